//! Operator actions: a client event's JSON payload, checked against the operator's claims,
//! becomes the one Kafka event that carries it out. Pure: ids and the clock are parameters,
//! what the logger knows about the conversation is passed in.

use caas_events::keys;
use caas_events::model::{
    Channel, Content, ConversationEvent, ConversationEventKind, Origin, OutboundCommand,
    PresenceEvent, PresenceKind, PresenceSubject, Template, TemplateComponent, TemplateParameter,
    Text,
};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::rooms::{self, KeyError};
use crate::auth::Claims;

/// The `source` of every event the gateway produces.
pub const SOURCE: &str = "gateway";

/// WhatsApp's customer service window: free-form messages only within 24 hours of the
/// customer's last message; outside it only templates.
pub const SERVICE_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;

/// Longest text body accepted (WhatsApp's limit).
pub const MAX_TEXT_CHARS: usize = 4096;

/// How long an operator's typing signal holds unless repeated.
pub const TYPING_TTL_MS: i64 = 6_000;

/// How long an operator counts as online after a heartbeat; clients beat every 20 s.
pub const ONLINE_TTL_MS: i64 = 60_000;

/// Why an action was refused. The message is sent back in the ack.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// The payload is not what the event expects.
    #[error("invalid {event} payload: {reason}")]
    Invalid {
        /// The client event.
        event: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The conversation key is malformed or belongs to another tenant.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The operator's role does not allow it.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The conversation's state does not allow it.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A free-form message outside WhatsApp's 24-hour window.
    #[error("the 24-hour customer service window is closed (the customer last wrote {0}); send a template instead")]
    WindowClosed(String),
}

/// What the gateway knows about a conversation when an action arrives (from the logger's
/// `conversations` document; all unknown when the logger has none or MongoDB is down).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConversationState {
    /// Whether the logger's document was found.
    pub known: bool,
    /// The current assignee.
    pub assignee: Option<String>,
    /// When the customer last wrote, epoch ms.
    pub last_inbound_at: Option<i64>,
}

/// Parse a client payload into `T`, with an error naming the event.
pub fn parse<T: DeserializeOwned>(
    event: &'static str,
    payload: serde_json::Value,
) -> Result<T, ActionError> {
    serde_json::from_value(payload).map_err(|error| ActionError::Invalid {
        event,
        reason: error.to_string(),
    })
}

/// `message.send`: text, or a template.
#[derive(Debug, Clone, Deserialize)]
pub struct SendRequest {
    /// The conversation to answer.
    pub conversation_key: String,
    /// A free-form text.
    pub text: Option<String>,
    /// A template (required outside the 24-hour window on WhatsApp).
    pub template: Option<TemplateRequest>,
    /// A client-chosen id: sending again with the same id yields the same command id, so a
    /// retried send is de-duplicated downstream.
    pub idempotency_id: Option<String>,
    /// Provider message id to quote.
    pub reply_to: Option<String>,
}

/// A template to send.
#[derive(Debug, Clone, Deserialize)]
pub struct TemplateRequest {
    /// The approved template's name.
    pub name: String,
    /// Its language code, e.g. `en_US`.
    pub language: String,
    /// Values of its variables.
    #[serde(default)]
    pub parameters: Vec<TemplateParameterRequest>,
}

/// One template variable.
#[derive(Debug, Clone, Deserialize)]
pub struct TemplateParameterRequest {
    /// `header`, `body` (default) or `button`.
    #[serde(default = "default_component")]
    pub component: String,
    /// The value.
    pub text: String,
    /// Which button, for `button`.
    pub button_index: Option<i32>,
}

fn default_component() -> String {
    "body".to_string()
}

/// `conversation.assign|handoff|release|close`.
#[derive(Debug, Clone, Deserialize)]
pub struct ConversationRequest {
    /// The conversation.
    pub conversation_key: String,
    /// `conversation.assign` only: who gets it (default: the caller).
    pub operator_id: Option<String>,
    /// Why, in words.
    pub reason: Option<String>,
    /// Makes a retried action produce the same event id.
    pub idempotency_id: Option<String>,
}

/// `typing`.
#[derive(Debug, Clone, Deserialize)]
pub struct TypingRequest {
    /// The conversation.
    pub conversation_key: String,
    /// `false` when the operator stopped typing (default `true`).
    pub active: Option<bool>,
}

/// `conversation.read`.
#[derive(Debug, Clone, Deserialize)]
pub struct ReadRequest {
    /// The conversation.
    pub conversation_key: String,
    /// The newest message the operator saw.
    pub provider_message_id: Option<String>,
}

/// `conversation.join` / `conversation.leave`.
#[derive(Debug, Clone, Deserialize)]
pub struct RoomRequest {
    /// The conversation.
    pub conversation_key: String,
}

/// The conversation actions that become `conversation.events.v1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConversationAction {
    /// Assign to an operator (the caller by default).
    Assign,
    /// Take over from the bot: assign to the caller.
    Handoff,
    /// Give back to the bot.
    Release,
    /// Close.
    Close,
}

impl ConversationAction {
    /// The client event name.
    pub fn event(self) -> &'static str {
        match self {
            ConversationAction::Assign => "conversation.assign",
            ConversationAction::Handoff => "conversation.handoff",
            ConversationAction::Release => "conversation.release",
            ConversationAction::Close => "conversation.close",
        }
    }
}

/// Build the outbound command for `message.send`.
pub fn send_message(
    claims: &Claims,
    request: SendRequest,
    state: &ConversationState,
    now_ms: i64,
    fresh_id: &str,
) -> Result<OutboundCommand, ActionError> {
    const EVENT: &str = "message.send";
    let parsed = rooms::check_conversation_key(&claims.tenant, &request.conversation_key)?;
    let content = match (request.text, request.template) {
        (Some(_), Some(_)) => {
            return Err(invalid(EVENT, "send either text or template, not both"));
        }
        (None, None) => return Err(invalid(EVENT, "text or template is required")),
        (Some(text), None) => {
            if text.trim().is_empty() {
                return Err(invalid(EVENT, "text is empty"));
            }
            if text.chars().count() > MAX_TEXT_CHARS {
                return Err(invalid(
                    EVENT,
                    &format!("text is longer than {MAX_TEXT_CHARS} characters"),
                ));
            }
            if parsed.channel == Channel::Whatsapp && state.known {
                let open = state
                    .last_inbound_at
                    .is_some_and(|last| now_ms - last < SERVICE_WINDOW_MS);
                if !open {
                    let when = match state.last_inbound_at {
                        Some(last) => format!("{} hours ago", (now_ms - last) / 3_600_000),
                        None => "never".to_string(),
                    };
                    return Err(ActionError::WindowClosed(when));
                }
            }
            Content::Text(Text {
                preview_url: text.contains("https://") || text.contains("http://"),
                body: text,
            })
        }
        (None, Some(template)) => Content::Template(template_content(template)?),
    };
    let command_id = match &request.idempotency_id {
        Some(idempotency_id) => {
            check_idempotency_id(EVENT, idempotency_id)?;
            keys::deterministic_event_id(&[
                SOURCE,
                EVENT,
                &claims.tenant,
                &claims.sub,
                idempotency_id,
            ])
        }
        None => fresh_id.to_string(),
    };
    Ok(OutboundCommand {
        event_id: keys::deterministic_event_id(&[SOURCE, "outbound.command", &command_id]),
        tenant_id: claims.tenant.clone(),
        conversation_key: request.conversation_key.clone(),
        channel: parsed.channel,
        occurred_at: now_ms,
        recorded_at: now_ms,
        source: SOURCE.to_string(),
        trace_parent: None,
        command_id,
        to: parsed.customer_id.to_string(),
        content,
        origin: Origin::Operator,
        campaign_id: None,
        reply_to: request.reply_to.filter(|id| !id.is_empty()),
        operator_id: Some(claims.sub.clone()),
        business_id: None,
        callback_data: None,
    })
}

fn template_content(template: TemplateRequest) -> Result<Template, ActionError> {
    const EVENT: &str = "message.send";
    if template.name.trim().is_empty() || template.language.trim().is_empty() {
        return Err(invalid(
            EVENT,
            "template.name and template.language are required",
        ));
    }
    let parameters = template
        .parameters
        .into_iter()
        .map(|parameter| {
            let component = match parameter.component.as_str() {
                "header" => TemplateComponent::Header,
                "body" => TemplateComponent::Body,
                "button" => TemplateComponent::Button,
                other => {
                    return Err(invalid(
                        EVENT,
                        &format!(
                            "template parameter component {other:?} is not header, body or button"
                        ),
                    ))
                }
            };
            Ok(TemplateParameter {
                component,
                button_index: parameter.button_index,
                text: parameter.text,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Template {
        name: template.name,
        language: template.language,
        parameters,
        header_media: None,
    })
}

/// Build the conversation event for an assign, handoff, release or close.
pub fn change_conversation(
    action: ConversationAction,
    claims: &Claims,
    request: ConversationRequest,
    state: &ConversationState,
    now_ms: i64,
    fresh_id: &str,
) -> Result<ConversationEvent, ActionError> {
    let event = action.event();
    let parsed = rooms::check_conversation_key(&claims.tenant, &request.conversation_key)?;
    let held_by_other = state
        .assignee
        .as_deref()
        .filter(|assignee| *assignee != claims.sub);
    let (kind, assignee) = match action {
        ConversationAction::Assign => {
            let target = request
                .operator_id
                .clone()
                .filter(|id| !id.trim().is_empty())
                .unwrap_or_else(|| claims.sub.clone());
            if target != claims.sub && !claims.is_admin() {
                return Err(ActionError::Forbidden(
                    "only admins assign conversations to other operators".to_string(),
                ));
            }
            (ConversationEventKind::Assigned, Some(target))
        }
        ConversationAction::Handoff => {
            if let (Some(other), false) = (held_by_other, claims.is_admin()) {
                return Err(ActionError::Conflict(format!(
                    "the conversation is assigned to {other}; an admin can reassign it"
                )));
            }
            // `handoff_to_human` in the contract is the bot's (or customer's) request for a
            // human; an operator taking over is an assignment to itself, which the logger and
            // the chatbot read as "a human handles it now".
            (ConversationEventKind::Assigned, Some(claims.sub.clone()))
        }
        ConversationAction::Release => {
            if let (Some(other), false) = (held_by_other, claims.is_admin()) {
                return Err(ActionError::Conflict(format!(
                    "the conversation is assigned to {other}; only they or an admin can release it"
                )));
            }
            (ConversationEventKind::ReleasedToBot, None)
        }
        ConversationAction::Close => (ConversationEventKind::Closed, state.assignee.clone()),
    };
    let event_id = match &request.idempotency_id {
        Some(idempotency_id) => {
            check_idempotency_id(event, idempotency_id)?;
            keys::deterministic_event_id(&[
                SOURCE,
                event,
                &claims.tenant,
                &claims.sub,
                idempotency_id,
            ])
        }
        None => fresh_id.to_string(),
    };
    Ok(ConversationEvent {
        event_id,
        tenant_id: claims.tenant.clone(),
        conversation_key: request.conversation_key.clone(),
        channel: parsed.channel,
        occurred_at: now_ms,
        recorded_at: now_ms,
        source: SOURCE.to_string(),
        trace_parent: None,
        kind,
        actor_operator_id: Some(claims.sub.clone()),
        assignee_operator_id: assignee,
        previous_assignee_operator_id: state.assignee.clone(),
        reason: request
            .reason
            .filter(|reason| !reason.is_empty())
            .or_else(|| (action == ConversationAction::Handoff).then(|| "taken over".to_string())),
    })
}

/// Build the presence signal for `typing`.
pub fn typing(
    claims: &Claims,
    request: TypingRequest,
    now_ms: i64,
    fresh_id: &str,
) -> Result<PresenceEvent, ActionError> {
    let parsed = rooms::check_conversation_key(&claims.tenant, &request.conversation_key)?;
    let active = request.active.unwrap_or(true);
    Ok(PresenceEvent {
        event_id: fresh_id.to_string(),
        tenant_id: claims.tenant.clone(),
        conversation_key: request.conversation_key.clone(),
        channel: Some(parsed.channel),
        occurred_at: now_ms,
        recorded_at: now_ms,
        source: SOURCE.to_string(),
        trace_parent: None,
        kind: PresenceKind::Typing,
        subject: PresenceSubject::Operator,
        subject_id: claims.sub.clone(),
        provider_message_id: None,
        // A stop is a signal that has already lapsed.
        expires_at: Some(if active {
            now_ms + TYPING_TTL_MS
        } else {
            now_ms
        }),
    })
}

/// Build the presence signal for `conversation.read`.
pub fn read(
    claims: &Claims,
    request: ReadRequest,
    now_ms: i64,
    fresh_id: &str,
) -> Result<PresenceEvent, ActionError> {
    let parsed = rooms::check_conversation_key(&claims.tenant, &request.conversation_key)?;
    Ok(PresenceEvent {
        event_id: fresh_id.to_string(),
        tenant_id: claims.tenant.clone(),
        conversation_key: request.conversation_key.clone(),
        channel: Some(parsed.channel),
        occurred_at: now_ms,
        recorded_at: now_ms,
        source: SOURCE.to_string(),
        trace_parent: None,
        kind: PresenceKind::Read,
        subject: PresenceSubject::Operator,
        subject_id: claims.sub.clone(),
        provider_message_id: request.provider_message_id.filter(|id| !id.is_empty()),
        expires_at: None,
    })
}

/// The operator's own presence: `online` (connect, heartbeat) or `offline` (disconnect),
/// keyed by its operator key.
pub fn operator_presence(
    claims: &Claims,
    online: bool,
    now_ms: i64,
    fresh_id: &str,
) -> PresenceEvent {
    PresenceEvent {
        event_id: fresh_id.to_string(),
        tenant_id: claims.tenant.clone(),
        conversation_key: keys::operator_key(&claims.tenant, &claims.sub),
        channel: None,
        occurred_at: now_ms,
        recorded_at: now_ms,
        source: SOURCE.to_string(),
        trace_parent: None,
        kind: if online {
            PresenceKind::Online
        } else {
            PresenceKind::Offline
        },
        subject: PresenceSubject::Operator,
        subject_id: claims.sub.clone(),
        provider_message_id: None,
        expires_at: online.then_some(now_ms + ONLINE_TTL_MS),
    }
}

fn check_idempotency_id(event: &'static str, id: &str) -> Result<(), ActionError> {
    if id.is_empty() || id.len() > 200 {
        return Err(invalid(
            event,
            "idempotency_id must have 1 to 200 characters",
        ));
    }
    Ok(())
}

fn invalid(event: &'static str, reason: &str) -> ActionError {
    ActionError::Invalid {
        event,
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;
    use serde_json::json;

    const NOW: i64 = 1_800_000_000_000;

    fn operator(sub: &str) -> Claims {
        Claims {
            sub: sub.into(),
            tenant: "acme".into(),
            role: Role::Operator,
            exp: 0,
        }
    }

    fn send(payload: serde_json::Value) -> SendRequest {
        parse("message.send", payload).unwrap()
    }

    fn open_window() -> ConversationState {
        ConversationState {
            known: true,
            assignee: None,
            last_inbound_at: Some(NOW - 60_000),
        }
    }

    #[test]
    fn a_text_becomes_an_operator_command_to_the_customer() {
        let command = send_message(
            &operator("op-1"),
            send(json!({"conversation_key": "acme:whatsapp:49151", "text": "hi"})),
            &open_window(),
            NOW,
            "fresh",
        )
        .unwrap();
        assert_eq!(command.command_id, "fresh");
        assert_eq!(command.origin, Origin::Operator);
        assert_eq!(command.operator_id.as_deref(), Some("op-1"));
        assert_eq!(command.to, "49151");
        assert_eq!(command.channel, Channel::Whatsapp);
        assert_eq!(command.source, "gateway");
        assert!(matches!(command.content, Content::Text(ref text) if text.body == "hi"));
    }

    #[test]
    fn the_idempotency_id_makes_the_command_id_deterministic() {
        let payload =
            json!({"conversation_key": "acme:rcs:1", "text": "hi", "idempotency_id": "k-1"});
        let first = send_message(
            &operator("op-1"),
            send(payload.clone()),
            &open_window(),
            NOW,
            "a",
        )
        .unwrap();
        let again = send_message(
            &operator("op-1"),
            send(payload.clone()),
            &open_window(),
            NOW + 5,
            "b",
        )
        .unwrap();
        assert_eq!(first.command_id, again.command_id);
        assert_eq!(first.event_id, again.event_id);
        let other_operator =
            send_message(&operator("op-2"), send(payload), &open_window(), NOW, "c").unwrap();
        assert_ne!(first.command_id, other_operator.command_id);
    }

    #[test]
    fn another_tenants_conversation_is_refused() {
        let error = send_message(
            &operator("op-1"),
            send(json!({"conversation_key": "globex:whatsapp:1", "text": "hi"})),
            &open_window(),
            NOW,
            "x",
        )
        .unwrap_err();
        assert!(matches!(error, ActionError::Key(KeyError::OtherTenant(_))));
        assert!(error.to_string().contains("not in your tenant"));
    }

    #[test]
    fn outside_the_window_only_templates_go_to_whatsapp() {
        let stale = ConversationState {
            known: true,
            assignee: None,
            last_inbound_at: Some(NOW - SERVICE_WINDOW_MS - 1),
        };
        let error = send_message(
            &operator("op-1"),
            send(json!({"conversation_key": "acme:whatsapp:1", "text": "hi"})),
            &stale,
            NOW,
            "x",
        )
        .unwrap_err();
        assert!(matches!(error, ActionError::WindowClosed(_)));
        let template = send_message(
            &operator("op-1"),
            send(json!({"conversation_key": "acme:whatsapp:1",
                "template": {"name": "follow_up", "language": "en", "parameters": [{"text": "Kim"}]}})),
            &stale,
            NOW,
            "x",
        )
        .unwrap();
        assert!(
            matches!(template.content, Content::Template(ref t) if t.parameters[0].component == TemplateComponent::Body)
        );
        // RCS has no such window; an unknown conversation is left to the sender to judge.
        assert!(send_message(
            &operator("op-1"),
            send(json!({"conversation_key": "acme:rcs:1", "text": "hi"})),
            &stale,
            NOW,
            "x"
        )
        .is_ok());
        assert!(send_message(
            &operator("op-1"),
            send(json!({"conversation_key": "acme:whatsapp:1", "text": "hi"})),
            &ConversationState::default(),
            NOW,
            "x"
        )
        .is_ok());
    }

    #[test]
    fn bad_payloads_say_what_is_wrong() {
        let claims = operator("op-1");
        for (payload, needle) in [
            (
                json!({"conversation_key": "acme:rcs:1"}),
                "text or template",
            ),
            (
                json!({"conversation_key": "acme:rcs:1", "text": "  "}),
                "empty",
            ),
            (
                json!({"conversation_key": "acme:rcs:1", "text": "a", "template": {"name": "t", "language": "en"}}),
                "not both",
            ),
            (
                json!({"conversation_key": "acme:rcs:1", "text": "x".repeat(MAX_TEXT_CHARS + 1)}),
                "longer",
            ),
        ] {
            let error = send_message(&claims, send(payload), &open_window(), NOW, "x").unwrap_err();
            assert!(error.to_string().contains(needle), "{error}");
        }
        let error = parse::<SendRequest>("message.send", json!({"text": "hi"})).unwrap_err();
        assert!(error.to_string().contains("conversation_key"), "{error}");
    }

    #[test]
    fn only_admins_assign_others_and_take_over_from_others() {
        let request = |operator_id: Option<&str>| ConversationRequest {
            conversation_key: "acme:whatsapp:1".into(),
            operator_id: operator_id.map(str::to_string),
            reason: None,
            idempotency_id: None,
        };
        let unassigned = ConversationState::default();
        let event = change_conversation(
            ConversationAction::Assign,
            &operator("op-1"),
            request(None),
            &unassigned,
            NOW,
            "e",
        )
        .unwrap();
        assert_eq!(event.kind, ConversationEventKind::Assigned);
        assert_eq!(event.assignee_operator_id.as_deref(), Some("op-1"));
        assert!(matches!(
            change_conversation(
                ConversationAction::Assign,
                &operator("op-1"),
                request(Some("op-2")),
                &unassigned,
                NOW,
                "e"
            ),
            Err(ActionError::Forbidden(_))
        ));
        let mut admin = operator("boss");
        admin.role = Role::Admin;
        assert!(change_conversation(
            ConversationAction::Assign,
            &admin,
            request(Some("op-2")),
            &unassigned,
            NOW,
            "e"
        )
        .is_ok());

        let held = ConversationState {
            known: true,
            assignee: Some("op-2".into()),
            last_inbound_at: None,
        };
        assert!(matches!(
            change_conversation(
                ConversationAction::Handoff,
                &operator("op-1"),
                request(None),
                &held,
                NOW,
                "e"
            ),
            Err(ActionError::Conflict(_))
        ));
        let takeover = change_conversation(
            ConversationAction::Handoff,
            &operator("op-1"),
            request(None),
            &ConversationState::default(),
            NOW,
            "e",
        )
        .unwrap();
        assert_eq!(takeover.kind, ConversationEventKind::Assigned);
        assert_eq!(takeover.assignee_operator_id.as_deref(), Some("op-1"));
        assert_eq!(takeover.reason.as_deref(), Some("taken over"));
        let release = change_conversation(
            ConversationAction::Release,
            &operator("op-2"),
            request(None),
            &held,
            NOW,
            "e",
        )
        .unwrap();
        assert_eq!(release.kind, ConversationEventKind::ReleasedToBot);
        assert_eq!(release.assignee_operator_id, None);
        assert_eq!(
            release.previous_assignee_operator_id.as_deref(),
            Some("op-2")
        );
        let close = change_conversation(
            ConversationAction::Close,
            &operator("op-1"),
            request(None),
            &held,
            NOW,
            "e",
        )
        .unwrap();
        assert_eq!(close.kind, ConversationEventKind::Closed);
        assert_eq!(close.assignee_operator_id.as_deref(), Some("op-2"));
    }

    #[test]
    fn presence_signals_expire() {
        let claims = operator("op-1");
        let typing_event = typing(
            &claims,
            TypingRequest {
                conversation_key: "acme:rcs:1".into(),
                active: None,
            },
            NOW,
            "t",
        )
        .unwrap();
        assert_eq!(typing_event.kind, PresenceKind::Typing);
        assert_eq!(typing_event.expires_at, Some(NOW + TYPING_TTL_MS));
        let stopped = typing(
            &claims,
            TypingRequest {
                conversation_key: "acme:rcs:1".into(),
                active: Some(false),
            },
            NOW,
            "t",
        )
        .unwrap();
        assert_eq!(stopped.expires_at, Some(NOW));
        let online = operator_presence(&claims, true, NOW, "o");
        assert_eq!(online.conversation_key, "acme:operator:op-1");
        assert_eq!(online.channel, None);
        assert_eq!(online.expires_at, Some(NOW + ONLINE_TTL_MS));
        assert_eq!(
            operator_presence(&claims, false, NOW, "o").kind,
            PresenceKind::Offline
        );
        assert!(read(
            &claims,
            ReadRequest {
                conversation_key: "globex:rcs:1".into(),
                provider_message_id: None
            },
            NOW,
            "r"
        )
        .is_err());
    }
}
