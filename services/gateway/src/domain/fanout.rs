//! What one Kafka event becomes for operators: a list of socket.io emits (event name, rooms,
//! JSON payload). Pure: the consumer decodes the record and looks up the logger's `seq` and
//! conversation snapshot; this module decides the rest.
//!
//! Rooms are derived from the event's `tenant_id` only, and an event whose conversation key
//! belongs to another tenant than its `tenant_id` emits nothing, so a malformed event can never
//! reach another tenant's operators.

use caas_events::model::{
    CampaignEvent, ConversationEvent, ConversationEventKind, InboundMessage, InboundStatus,
    OutboundCommand, OutboundResult, PresenceKind, PresenceSubject, PresenceUpdate, SendOutcome,
};
use caas_events::{keys, topics};
use serde_json::{json, Map, Value};

use caas_logger::domain::docs::{inbound_message_id, outbound_message_id};

use super::rooms;
use super::views::{
    content_json, origin_name, preview, ConversationView, DeliveryStatus, Direction, LastMessage,
    MessageError, MessageView,
};

/// A decoded event from one of the topics the gateway fans out.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// `inbound.messages.v1`.
    InboundMessage(InboundMessage),
    /// `inbound.statuses.v1`.
    InboundStatus(InboundStatus),
    /// `outbound.commands.v1`.
    OutboundCommand(OutboundCommand),
    /// `outbound.results.v1`.
    OutboundResult(OutboundResult),
    /// `conversation.events.v1`.
    Conversation(ConversationEvent),
    /// `presence.updates.v1`.
    Presence(PresenceUpdate),
    /// `campaign.events.v1`.
    Campaign(CampaignEvent),
}

/// The topics the gateway consumes, in one consumer group.
pub const TOPICS: [&str; 7] = [
    topics::INBOUND_MESSAGES,
    topics::INBOUND_STATUSES,
    topics::OUTBOUND_COMMANDS,
    topics::OUTBOUND_RESULTS,
    topics::CONVERSATION_EVENTS,
    topics::PRESENCE_UPDATES,
    topics::CAMPAIGN_EVENTS,
];

impl Incoming {
    /// The envelope's event id.
    pub fn event_id(&self) -> &str {
        match self {
            Incoming::InboundMessage(event) => &event.event_id,
            Incoming::InboundStatus(event) => &event.event_id,
            Incoming::OutboundCommand(event) => &event.event_id,
            Incoming::OutboundResult(event) => &event.event_id,
            Incoming::Conversation(event) => &event.event_id,
            Incoming::Presence(event) => &event.event_id,
            Incoming::Campaign(event) => &event.event_id,
        }
    }

    /// The envelope's tenant.
    pub fn tenant_id(&self) -> &str {
        match self {
            Incoming::InboundMessage(event) => &event.tenant_id,
            Incoming::InboundStatus(event) => &event.tenant_id,
            Incoming::OutboundCommand(event) => &event.tenant_id,
            Incoming::OutboundResult(event) => &event.tenant_id,
            Incoming::Conversation(event) => &event.tenant_id,
            Incoming::Presence(event) => &event.tenant_id,
            Incoming::Campaign(event) => &event.tenant_id,
        }
    }

    /// The envelope's key (conversation, operator or campaign key).
    pub fn conversation_key(&self) -> &str {
        match self {
            Incoming::InboundMessage(event) => &event.conversation_key,
            Incoming::InboundStatus(event) => &event.conversation_key,
            Incoming::OutboundCommand(event) => &event.conversation_key,
            Incoming::OutboundResult(event) => &event.conversation_key,
            Incoming::Conversation(event) => &event.conversation_key,
            Incoming::Presence(event) => &event.conversation_key,
            Incoming::Campaign(event) => &event.conversation_key,
        }
    }

    /// Whether the event is part of a conversation's history, so the logger assigns it a
    /// `seq` worth waiting for. Presence and campaign events have none.
    pub fn has_seq(&self) -> bool {
        !matches!(self, Incoming::Presence(_) | Incoming::Campaign(_))
    }

    /// Whether a fresh conversation snapshot is worth reading after this event (it changes
    /// what the conversation list shows).
    pub fn changes_conversation(&self) -> bool {
        matches!(
            self,
            Incoming::InboundMessage(_) | Incoming::OutboundCommand(_) | Incoming::Conversation(_)
        )
    }
}

/// What the logger knows about an event, looked up before emitting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Enrichment {
    /// The conversation `seq` the logger assigned to this event, if found in time.
    pub seq: Option<i64>,
    /// The conversation as the logger stores it after (at least) this event.
    pub conversation: Option<ConversationView>,
    /// The `messages` document the logger changed for this event (for a provider status, the
    /// only way to know which message it is about).
    pub message_id: Option<String>,
}

/// A socket.io server event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerEvent {
    /// A message was received or requested.
    MessageNew,
    /// A message's delivery status changed.
    MessageStatus,
    /// A conversation's list entry changed.
    ConversationUpdated,
    /// Someone's presence changed.
    PresenceUpdated,
    /// Someone started or stopped typing.
    Typing,
    /// A campaign progressed.
    CampaignProgress,
}

impl ServerEvent {
    /// The event name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            ServerEvent::MessageNew => "message.new",
            ServerEvent::MessageStatus => "message.status",
            ServerEvent::ConversationUpdated => "conversation.updated",
            ServerEvent::PresenceUpdated => "presence.updated",
            ServerEvent::Typing => "typing",
            ServerEvent::CampaignProgress => "campaign.progress",
        }
    }
}

/// One emit: an event, the rooms it goes to (each socket in any of them receives it once),
/// and its payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Emission {
    /// The event.
    pub event: ServerEvent,
    /// Target rooms.
    pub rooms: Vec<String>,
    /// The JSON payload.
    pub payload: Value,
}

/// The emits for one event.
pub fn emissions(incoming: &Incoming, enrichment: &Enrichment) -> Vec<Emission> {
    let tenant = incoming.tenant_id();
    let key = incoming.conversation_key();
    if tenant.is_empty() || !key_belongs_to_tenant(key, tenant) {
        return Vec::new();
    }
    match incoming {
        Incoming::InboundMessage(message) => inbound_message(message, enrichment),
        Incoming::OutboundCommand(command) => outbound_command(command, enrichment),
        Incoming::OutboundResult(result) => vec![outbound_result(result, enrichment)],
        Incoming::InboundStatus(status) => vec![inbound_status(status, enrichment)],
        Incoming::Conversation(event) => vec![conversation_event(event, enrichment)],
        Incoming::Presence(update) => presence(update).into_iter().collect(),
        Incoming::Campaign(event) => vec![campaign(event)],
    }
}

/// Keys of every kind (conversation, operator, campaign) start with `<tenant>:`.
fn key_belongs_to_tenant(key: &str, tenant: &str) -> bool {
    key.split_once(':')
        .is_some_and(|(key_tenant, rest)| key_tenant == tenant && !rest.is_empty())
}

fn inbound_message(message: &InboundMessage, enrichment: &Enrichment) -> Vec<Emission> {
    let view = MessageView {
        id: inbound_message_id(message.channel.as_str(), &message.provider_message_id),
        conversation_key: message.conversation_key.clone(),
        seq: enrichment.seq,
        direction: Direction::Inbound,
        origin: "customer".to_string(),
        operator_id: None,
        command_id: None,
        provider_message_id: Some(message.provider_message_id.clone()),
        status: DeliveryStatus::Received,
        content: content_json(&message.content),
        preview: preview(&message.content),
        occurred_at: message.occurred_at,
        error: None,
    };
    let mut partial = Map::new();
    partial.insert("tenant_id".into(), json!(message.tenant_id));
    partial.insert("channel".into(), json!(message.channel.as_str()));
    partial.insert("customer_id".into(), json!(message.customer_id));
    if let Some(name) = &message.customer_display_name {
        partial.insert("customer_name".into(), json!(name));
    }
    partial.insert(
        "last_message".into(),
        json!(LastMessage {
            preview: view.preview.clone(),
            direction: Direction::Inbound,
            occurred_at: message.occurred_at,
        }),
    );
    partial.insert("last_inbound_at".into(), json!(message.occurred_at));
    partial.insert("last_activity_at".into(), json!(message.occurred_at));
    vec![
        Emission {
            event: ServerEvent::MessageNew,
            rooms: vec![rooms::conversation(&message.conversation_key)],
            payload: to_json(&view),
        },
        conversation_updated(
            &message.tenant_id,
            &message.conversation_key,
            "message.inbound",
            enrichment,
            partial,
            None,
        ),
    ]
}

fn outbound_command(command: &OutboundCommand, enrichment: &Enrichment) -> Vec<Emission> {
    let view = MessageView {
        id: outbound_message_id(&command.tenant_id, &command.command_id),
        conversation_key: command.conversation_key.clone(),
        seq: enrichment.seq,
        direction: Direction::Outbound,
        origin: origin_name(command.origin).to_string(),
        operator_id: command.operator_id.clone(),
        command_id: Some(command.command_id.clone()),
        provider_message_id: None,
        status: DeliveryStatus::Queued,
        content: content_json(&command.content),
        preview: preview(&command.content),
        occurred_at: command.occurred_at,
        error: None,
    };
    let mut partial = Map::new();
    partial.insert(
        "last_message".into(),
        json!(LastMessage {
            preview: view.preview.clone(),
            direction: Direction::Outbound,
            occurred_at: command.occurred_at,
        }),
    );
    partial.insert("last_activity_at".into(), json!(command.occurred_at));
    vec![
        Emission {
            event: ServerEvent::MessageNew,
            rooms: vec![rooms::conversation(&command.conversation_key)],
            payload: to_json(&view),
        },
        conversation_updated(
            &command.tenant_id,
            &command.conversation_key,
            "message.outbound",
            enrichment,
            partial,
            None,
        ),
    ]
}

fn outbound_result(result: &OutboundResult, enrichment: &Enrichment) -> Emission {
    let (status, error) = match result.outcome {
        SendOutcome::Accepted => (DeliveryStatus::Accepted, None),
        SendOutcome::Failed => (
            DeliveryStatus::Failed,
            Some(
                result
                    .error
                    .as_ref()
                    .map(|error| MessageError {
                        code: error.code.clone(),
                        reason: error.reason.clone(),
                    })
                    .unwrap_or_else(|| MessageError {
                        code: "unknown".to_string(),
                        reason: "the sender reported a failure without a reason".to_string(),
                    }),
            ),
        ),
    };
    Emission {
        event: ServerEvent::MessageStatus,
        rooms: vec![rooms::conversation(&result.conversation_key)],
        payload: json!({
            "conversation_key": result.conversation_key,
            "seq": enrichment.seq,
            "message_id": outbound_message_id(&result.tenant_id, &result.command_id),
            "command_id": result.command_id,
            "provider_message_id": result.provider_message_id,
            "status": status,
            "error": error,
            "occurred_at": result.occurred_at,
        }),
    }
}

fn inbound_status(status: &InboundStatus, enrichment: &Enrichment) -> Emission {
    let error = status.errors.first().map(|error| MessageError {
        code: error.code.clone(),
        reason: error.message.clone().unwrap_or_else(|| error.title.clone()),
    });
    Emission {
        event: ServerEvent::MessageStatus,
        rooms: vec![rooms::conversation(&status.conversation_key)],
        payload: json!({
            "conversation_key": status.conversation_key,
            "seq": enrichment.seq,
            "message_id": enrichment.message_id,
            "command_id": Value::Null,
            "provider_message_id": status.provider_message_id,
            "status": DeliveryStatus::from(status.status),
            "error": error,
            "occurred_at": status.occurred_at,
        }),
    }
}

fn conversation_event(event: &ConversationEvent, enrichment: &Enrichment) -> Emission {
    let mut partial = Map::new();
    match event.kind {
        ConversationEventKind::HandoffToHuman => {
            // The bot or the customer asked for a human: the conversation waits in the queue;
            // an assignee, if any, stays.
            partial.insert("mode".into(), json!("human"));
            if let Some(assignee) = &event.assignee_operator_id {
                partial.insert("assignee".into(), json!(assignee));
            }
        }
        ConversationEventKind::Assigned => {
            partial.insert("mode".into(), json!("human"));
            partial.insert("assignee".into(), json!(event.assignee_operator_id));
        }
        ConversationEventKind::Unassigned => {
            partial.insert("assignee".into(), Value::Null);
        }
        ConversationEventKind::ReleasedToBot => {
            partial.insert("mode".into(), json!("bot"));
            partial.insert("assignee".into(), Value::Null);
        }
        ConversationEventKind::Closed => {
            partial.insert("closed".into(), json!(true));
        }
        ConversationEventKind::Reopened => {
            partial.insert("closed".into(), json!(false));
        }
        ConversationEventKind::OptedOut => {
            partial.insert("opted_out".into(), json!(true));
        }
        ConversationEventKind::OptedIn => {
            partial.insert("opted_out".into(), json!(false));
        }
        ConversationEventKind::Unknown => {}
    }
    partial.insert("last_activity_at".into(), json!(event.occurred_at));
    let assignee_room = match (event.kind, &event.assignee_operator_id) {
        (
            ConversationEventKind::HandoffToHuman | ConversationEventKind::Assigned,
            Some(assignee),
        ) => Some(rooms::operator(&event.tenant_id, assignee)),
        _ => None,
    };
    let mut emission = conversation_updated(
        &event.tenant_id,
        &event.conversation_key,
        conversation_change(event.kind),
        enrichment,
        partial,
        assignee_room,
    );
    if let Some(payload) = emission.payload.as_object_mut() {
        payload.insert("actor_operator_id".into(), json!(event.actor_operator_id));
        payload.insert(
            "previous_assignee".into(),
            json!(event.previous_assignee_operator_id),
        );
        payload.insert("reason".into(), json!(event.reason));
    }
    emission
}

fn conversation_change(kind: ConversationEventKind) -> &'static str {
    match kind {
        ConversationEventKind::HandoffToHuman => "handoff_to_human",
        ConversationEventKind::Assigned => "assigned",
        ConversationEventKind::Unassigned => "unassigned",
        ConversationEventKind::ReleasedToBot => "released_to_bot",
        ConversationEventKind::Closed => "closed",
        ConversationEventKind::Reopened => "reopened",
        ConversationEventKind::OptedOut => "opted_out",
        ConversationEventKind::OptedIn => "opted_in",
        ConversationEventKind::Unknown => "unknown",
    }
}

/// `conversation.updated`: the logger's snapshot when there is one (`partial: false`), else
/// the fields this event alone determines (`partial: true`; absent fields are unchanged).
fn conversation_updated(
    tenant: &str,
    conversation_key: &str,
    change: &str,
    enrichment: &Enrichment,
    partial_fields: Map<String, Value>,
    extra_room: Option<String>,
) -> Emission {
    let mut payload = match &enrichment.conversation {
        Some(snapshot) => {
            let mut object = match to_json(snapshot) {
                Value::Object(object) => object,
                _ => Map::new(),
            };
            object.insert("partial".into(), json!(false));
            object
        }
        None => {
            let mut object = partial_fields;
            object.insert("conversation_key".into(), json!(conversation_key));
            object.insert("seq".into(), json!(enrichment.seq));
            object.insert("partial".into(), json!(true));
            object
        }
    };
    payload.insert("change".into(), json!(change));
    payload.insert("event_seq".into(), json!(enrichment.seq));
    let mut target = vec![rooms::tenant(tenant)];
    target.extend(extra_room);
    Emission {
        event: ServerEvent::ConversationUpdated,
        rooms: target,
        payload: Value::Object(payload),
    }
}

/// Operators' own typing is emitted by the gateway the moment it arrives (see `realtime`), so
/// the presence service's derived copy of it is not fanned out a second time.
fn presence(update: &PresenceUpdate) -> Option<Emission> {
    if update.kind == PresenceKind::Typing && update.subject == PresenceSubject::Operator {
        return None;
    }
    let subject = match update.subject {
        PresenceSubject::Customer => "customer",
        PresenceSubject::Operator => "operator",
    };
    let in_conversation = keys::parse_conversation_key(&update.conversation_key).is_some();
    let rooms = if in_conversation {
        vec![rooms::conversation(&update.conversation_key)]
    } else {
        vec![rooms::tenant(&update.tenant_id)]
    };
    if update.kind == PresenceKind::Typing {
        return Some(Emission {
            event: ServerEvent::Typing,
            rooms,
            payload: json!({
                "conversation_key": update.conversation_key,
                "seq": Value::Null,
                "subject": subject,
                "subject_id": update.subject_id,
                "active": update.active,
                "expires_at": update.expires_at,
            }),
        });
    }
    let kind = serde_json::to_value(update.kind).unwrap_or(Value::Null);
    Some(Emission {
        event: ServerEvent::PresenceUpdated,
        rooms,
        payload: json!({
            "conversation_key": update.conversation_key,
            "seq": Value::Null,
            "kind": kind,
            "subject": subject,
            "subject_id": update.subject_id,
            "active": update.active,
            "last_seen_at": update.last_seen_at,
            "read_provider_message_id": update.read_provider_message_id,
            "expires_at": update.expires_at,
        }),
    })
}

fn campaign(event: &CampaignEvent) -> Emission {
    let kind = serde_json::to_value(event.kind).unwrap_or(Value::Null);
    Emission {
        event: ServerEvent::CampaignProgress,
        rooms: vec![rooms::tenant(&event.tenant_id)],
        payload: json!({
            "conversation_key": event.conversation_key,
            "seq": Value::Null,
            "campaign_id": event.campaign_id,
            "kind": kind,
            "counts": event.counts,
            "reason": event.reason,
            "occurred_at": event.occurred_at,
        }),
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use caas_events::model::{
        CampaignCounts, CampaignEventKind, Channel, Content, MessageStatus, Origin, Text,
    };

    pub(crate) fn inbound(tenant: &str, customer: &str, body: &str) -> InboundMessage {
        InboundMessage {
            event_id: format!("evt-{body}"),
            tenant_id: tenant.into(),
            conversation_key: keys::conversation_key(tenant, Channel::Whatsapp, customer),
            channel: Channel::Whatsapp,
            occurred_at: 1_000,
            recorded_at: 1_001,
            source: "test".into(),
            trace_parent: None,
            provider_message_id: format!("wamid.{body}"),
            customer_id: customer.into(),
            customer_display_name: Some("Kim".into()),
            business_id: None,
            reply_to: None,
            content: Content::Text(Text {
                body: body.into(),
                preview_url: false,
            }),
        }
    }

    #[test]
    fn an_inbound_message_goes_to_its_thread_and_the_tenant_list() {
        let message = inbound("acme", "49151", "hello");
        let emits = emissions(
            &Incoming::InboundMessage(message),
            &Enrichment {
                seq: Some(7),
                ..Enrichment::default()
            },
        );
        assert_eq!(emits.len(), 2);
        assert_eq!(emits[0].event.name(), "message.new");
        assert_eq!(emits[0].rooms, vec!["conversation:acme:whatsapp:49151"]);
        assert_eq!(emits[0].payload["seq"], 7);
        assert_eq!(emits[0].payload["conversation_key"], "acme:whatsapp:49151");
        assert_eq!(emits[0].payload["preview"], "hello");
        assert_eq!(emits[0].payload["status"], "received");
        assert_eq!(emits[0].payload["id"], "in:whatsapp:wamid.hello");
        assert_eq!(emits[1].event.name(), "conversation.updated");
        assert_eq!(emits[1].rooms, vec!["tenant:acme"]);
        assert_eq!(emits[1].payload["partial"], true);
        assert_eq!(emits[1].payload["seq"], 7);
        assert_eq!(emits[1].payload["last_message"]["preview"], "hello");
    }

    #[test]
    fn a_snapshot_replaces_the_partial_list_entry() {
        let snapshot = ConversationView {
            conversation_key: "acme:whatsapp:49151".into(),
            seq: Some(9),
            tenant_id: "acme".into(),
            channel: "whatsapp".into(),
            customer_id: "49151".into(),
            customer_name: None,
            mode: "human".into(),
            assignee: Some("op-1".into()),
            closed: false,
            opted_out: false,
            unread_count: 3,
            last_message: None,
            last_inbound_at: Some(1_000),
            last_activity_at: Some(1_000),
        };
        let emits = emissions(
            &Incoming::InboundMessage(inbound("acme", "49151", "x")),
            &Enrichment {
                seq: Some(8),
                conversation: Some(snapshot),
                message_id: None,
            },
        );
        assert_eq!(emits[1].payload["partial"], false);
        assert_eq!(emits[1].payload["seq"], 9);
        assert_eq!(emits[1].payload["unread_count"], 3);
        assert_eq!(emits[1].payload["change"], "message.inbound");
        assert_eq!(emits[1].payload["event_seq"], 8);
    }

    #[test]
    fn an_event_whose_key_names_another_tenant_emits_nothing() {
        let mut message = inbound("acme", "49151", "x");
        message.conversation_key = "globex:whatsapp:49151".into();
        assert!(emissions(&Incoming::InboundMessage(message), &Enrichment::default()).is_empty());
        let mut message = inbound("acme", "49151", "x");
        message.tenant_id = String::new();
        assert!(emissions(&Incoming::InboundMessage(message), &Enrichment::default()).is_empty());
    }

    #[test]
    fn results_and_statuses_become_message_status() {
        let result = OutboundResult {
            event_id: "e".into(),
            tenant_id: "acme".into(),
            conversation_key: "acme:rcs:1".into(),
            channel: Channel::Rcs,
            occurred_at: 5,
            recorded_at: 5,
            source: "sender".into(),
            trace_parent: None,
            command_id: "cmd-1".into(),
            outcome: SendOutcome::Failed,
            provider_message_id: None,
            error: None,
            origin: Origin::Operator,
            campaign_id: None,
            attempts: 3,
        };
        let emit = &emissions(&Incoming::OutboundResult(result), &Enrichment::default())[0];
        assert_eq!(emit.event.name(), "message.status");
        assert_eq!(emit.payload["message_id"], "out:acme:cmd-1");
        assert_eq!(emit.payload["status"], "failed");
        assert_eq!(emit.payload["error"]["code"], "unknown");
        assert!(emit.payload["seq"].is_null());

        let status = InboundStatus {
            event_id: "s".into(),
            tenant_id: "acme".into(),
            conversation_key: "acme:rcs:1".into(),
            channel: Channel::Rcs,
            occurred_at: 6,
            recorded_at: 6,
            source: "ingest".into(),
            trace_parent: None,
            provider_message_id: "p-1".into(),
            status: MessageStatus::Delivered,
            recipient_id: "1".into(),
            business_id: None,
            errors: vec![],
            conversation: None,
            pricing: None,
            biz_opaque_callback_data: None,
        };
        let emit = &emissions(
            &Incoming::InboundStatus(status),
            &Enrichment {
                seq: Some(4),
                conversation: None,
                message_id: Some("out:acme:cmd-1".into()),
            },
        )[0];
        assert_eq!(emit.payload["status"], "delivered");
        assert_eq!(emit.payload["message_id"], "out:acme:cmd-1");
        assert_eq!(emit.payload["provider_message_id"], "p-1");
        assert_eq!(emit.payload["seq"], 4);
    }

    #[test]
    fn a_handoff_reaches_the_tenant_and_the_new_assignee() {
        let event = ConversationEvent {
            event_id: "c".into(),
            tenant_id: "acme".into(),
            conversation_key: "acme:whatsapp:1".into(),
            channel: Channel::Whatsapp,
            occurred_at: 9,
            recorded_at: 9,
            source: "gateway".into(),
            trace_parent: None,
            kind: ConversationEventKind::HandoffToHuman,
            actor_operator_id: Some("op-1".into()),
            assignee_operator_id: Some("op-1".into()),
            previous_assignee_operator_id: None,
            reason: None,
        };
        let emit = &emissions(&Incoming::Conversation(event), &Enrichment::default())[0];
        assert_eq!(emit.rooms, vec!["tenant:acme", "operator:acme:op-1"]);
        assert_eq!(emit.payload["mode"], "human");
        assert_eq!(emit.payload["assignee"], "op-1");
        assert_eq!(emit.payload["change"], "handoff_to_human");
    }

    #[test]
    fn typing_and_presence_and_campaigns() {
        let mut update = PresenceUpdate {
            event_id: "p".into(),
            tenant_id: "acme".into(),
            conversation_key: "acme:whatsapp:1".into(),
            channel: Some(Channel::Whatsapp),
            occurred_at: 1,
            recorded_at: 1,
            source: "presence".into(),
            trace_parent: None,
            kind: PresenceKind::Typing,
            subject: PresenceSubject::Customer,
            subject_id: "1".into(),
            active: true,
            last_seen_at: None,
            read_provider_message_id: None,
            expires_at: Some(6),
        };
        let emit = &emissions(&Incoming::Presence(update.clone()), &Enrichment::default())[0];
        assert_eq!(emit.event.name(), "typing");
        assert_eq!(emit.rooms, vec!["conversation:acme:whatsapp:1"]);
        assert_eq!(emit.payload["subject"], "customer");
        let mut operator_typing = update.clone();
        operator_typing.subject = PresenceSubject::Operator;
        assert!(emissions(&Incoming::Presence(operator_typing), &Enrichment::default()).is_empty());
        update.subject = PresenceSubject::Operator;
        update.subject_id = "op-2".into();
        update.kind = PresenceKind::Online;
        update.conversation_key = keys::operator_key("acme", "op-2");
        let emit = &emissions(&Incoming::Presence(update), &Enrichment::default())[0];
        assert_eq!(emit.event.name(), "presence.updated");
        assert_eq!(emit.rooms, vec!["tenant:acme"]);
        assert_eq!(emit.payload["kind"], "online");

        let campaign = CampaignEvent {
            event_id: "k".into(),
            tenant_id: "acme".into(),
            conversation_key: keys::campaign_key("acme", "c1"),
            channel: Channel::Whatsapp,
            occurred_at: 1,
            recorded_at: 1,
            source: "campaign".into(),
            trace_parent: None,
            campaign_id: "c1".into(),
            kind: CampaignEventKind::Progress,
            command_id: None,
            counts: CampaignCounts {
                audience: 10,
                sent: 4,
                ..CampaignCounts::default()
            },
            reason: None,
        };
        let emit = &emissions(&Incoming::Campaign(campaign), &Enrichment::default())[0];
        assert_eq!(emit.event.name(), "campaign.progress");
        assert_eq!(emit.rooms, vec!["tenant:acme"]);
        assert_eq!(emit.payload["counts"]["sent"], 4);
        assert_eq!(emit.payload["kind"], "progress");
    }
}
