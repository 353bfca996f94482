//! The consent ledger's writer: `inbound.messages.v1` (STOP / START keywords, replies) and
//! `conversation.events.v1` (`opted_out` / `opted_in`, e.g. from RCS UNSUBSCRIBE / SUBSCRIBE).
//!
//! For a keyword: the change is recorded in `consents` (history de-duplicated by the message's
//! event id; the current status only moves to a later change), the customer's pending campaign
//! messages are skipped, an `opted_out` / `opted_in` conversation event tells the rest of the
//! platform, and the customer gets a confirmation in the keyword's language (an outbound
//! command of origin `bot` with a deterministic id, so a redelivery is not a second message).
//! Platform events (RCS) are recorded and applied the same way but not confirmed: the
//! customer used the platform's own control, and RBM agents must not message a user who
//! unsubscribed.
//!
//! Every inbound message also marks the campaign messages its sender had received as replied.

use std::sync::Arc;

use caas_events::keys::parse_conversation_key;
use caas_events::model::{
    Channel, Content, ConversationEvent, ConversationEventKind, InboundMessage, Origin,
    OutboundCommand, Text,
};
use caas_events::{keys, topics};
use caas_kafka::{Handler, HandlerError, Record};

use crate::context::{new_trace, now_ms, Context, SOURCE};
use crate::domain::consent::{ConsentAction, KeywordMatch};
use crate::domain::ids;
use crate::metrics::metrics;
use crate::store::ConsentEntry;

/// Records consent changes and replies.
pub struct ConsentHandler {
    context: Arc<Context>,
}

impl ConsentHandler {
    /// A handler over the shared context.
    pub fn new(context: Arc<Context>) -> Self {
        Self { context }
    }

    async fn on_message(&self, message: InboundMessage) -> Result<(), HandlerError> {
        let store = &self.context.store;
        let now = now_ms();
        store
            .mark_replied(
                &message.tenant_id,
                message.channel,
                &message.customer_id,
                now,
            )
            .await
            .map_err(HandlerError::retryable)?;
        let rules = &self.context.config.consent_rules;
        let candidates: Vec<&str> = match &message.content {
            Content::Text(text) => vec![text.body.as_str()],
            Content::InteractiveReply(reply) => vec![reply.id.as_str(), reply.title.as_str()],
            _ => Vec::new(),
        };
        let Some(found) = candidates
            .into_iter()
            .find_map(|text| rules.match_text(&message.tenant_id, text))
        else {
            return Ok(());
        };
        self.apply(
            &message.tenant_id,
            message.channel,
            &message.customer_id,
            found.action,
            ConsentEntry {
                event_id: message.event_id.clone(),
                status: found.action.status().to_string(),
                occurred_at: message.occurred_at,
                recorded_at: now,
                source: "keyword".to_string(),
                keyword: Some(found.keyword.clone()),
                language: Some(found.language.clone()),
            },
        )
        .await?;
        self.announce(&message, &found).await
    }

    /// Record the change and skip what is pending for the customer.
    async fn apply(
        &self,
        tenant_id: &str,
        channel: Channel,
        customer_id: &str,
        action: ConsentAction,
        entry: ConsentEntry,
    ) -> Result<(), HandlerError> {
        let store = &self.context.store;
        let source = entry.source.clone();
        let current = store
            .record_consent(tenant_id, channel, customer_id, action, entry)
            .await
            .map_err(HandlerError::retryable)?;
        metrics()
            .consent
            .with_label_values(&[action.status(), source_label(&source)])
            .inc();
        if action == ConsentAction::OptOut {
            let skipped = store
                .skip_customer(tenant_id, channel, customer_id, now_ms())
                .await
                .map_err(HandlerError::retryable)?;
            tracing::info!(tenant = tenant_id, %channel, current, skipped, "customer opted out");
        } else {
            tracing::info!(tenant = tenant_id, %channel, current, "customer opted in");
        }
        Ok(())
    }

    /// Tell the platform (conversation event) and the customer (confirmation).
    async fn announce(
        &self,
        message: &InboundMessage,
        found: &KeywordMatch,
    ) -> Result<(), HandlerError> {
        let now = now_ms();
        let trace = message.trace_parent.clone().or_else(|| Some(new_trace()));
        let change = ConversationEvent {
            event_id: ids::consent_event_id(&message.event_id),
            tenant_id: message.tenant_id.clone(),
            conversation_key: message.conversation_key.clone(),
            channel: message.channel,
            occurred_at: message.occurred_at,
            recorded_at: now,
            source: SOURCE.to_string(),
            trace_parent: trace.clone(),
            kind: match found.action {
                ConsentAction::OptOut => ConversationEventKind::OptedOut,
                ConsentAction::OptIn => ConversationEventKind::OptedIn,
            },
            actor_operator_id: None,
            assignee_operator_id: None,
            previous_assignee_operator_id: None,
            reason: Some(format!("keyword {} ({})", found.keyword, found.language)),
        };
        self.context
            .publisher
            .publish(&[change])
            .await
            .map_err(HandlerError::retryable)?;
        let rules = &self.context.config.consent_rules;
        let Some(reply) = rules.reply(&message.tenant_id, &found.language, found.action) else {
            return Ok(());
        };
        let max_age = self.context.config.confirmation_max_age.as_millis() as i64;
        if now - message.occurred_at > max_age {
            tracing::info!(event_id = %message.event_id, "keyword too old to confirm");
            return Ok(());
        }
        let command_id = ids::confirmation_command_id(&message.event_id);
        let confirmation = OutboundCommand {
            event_id: command_id.clone(),
            tenant_id: message.tenant_id.clone(),
            conversation_key: keys::conversation_key(
                &message.tenant_id,
                message.channel,
                &message.customer_id,
            ),
            channel: message.channel,
            occurred_at: now,
            recorded_at: now,
            source: SOURCE.to_string(),
            trace_parent: trace,
            command_id,
            to: message.customer_id.clone(),
            content: Content::Text(Text {
                body: reply.to_string(),
                preview_url: false,
            }),
            origin: Origin::Bot,
            campaign_id: None,
            reply_to: None,
            operator_id: None,
            business_id: message.business_id.clone(),
            callback_data: None,
        };
        self.context
            .publisher
            .publish(&[confirmation])
            .await
            .map_err(HandlerError::retryable)
    }

    async fn on_conversation_event(&self, event: ConversationEvent) -> Result<(), HandlerError> {
        let action = match event.kind {
            ConversationEventKind::OptedOut => ConsentAction::OptOut,
            ConversationEventKind::OptedIn => ConsentAction::OptIn,
            _ => return Ok(()),
        };
        if event.source == SOURCE {
            // Ours: recorded when the keyword was handled.
            return Ok(());
        }
        let Some(key) = parse_conversation_key(&event.conversation_key) else {
            return Err(HandlerError::poison(format!(
                "{} is not a conversation key",
                event.conversation_key
            )));
        };
        let source = if event.source == "ingest" {
            format!("{}_event", key.channel.as_str())
        } else {
            event.source.clone()
        };
        self.apply(
            key.tenant_id,
            key.channel,
            key.customer_id,
            action,
            ConsentEntry {
                event_id: event.event_id.clone(),
                status: action.status().to_string(),
                occurred_at: event.occurred_at,
                recorded_at: now_ms(),
                source,
                keyword: None,
                language: None,
            },
        )
        .await
    }
}

fn source_label(source: &str) -> &'static str {
    match source {
        "keyword" => "keyword",
        "rcs_event" => "rcs_event",
        "whatsapp_event" => "whatsapp_event",
        _ => "other",
    }
}

impl Handler for ConsentHandler {
    async fn handle(&self, record: &Record) -> Result<(), HandlerError> {
        let Some(payload) = record.payload.as_deref() else {
            return Err(HandlerError::poison("a record without a value"));
        };
        let codec = &self.context.codec;
        let classify = |error: caas_events::DecodeError| {
            if error.is_poison() {
                HandlerError::poison(error)
            } else {
                HandlerError::retryable(error)
            }
        };
        match record.topic.as_str() {
            topics::INBOUND_MESSAGES => {
                let message: InboundMessage = codec.decode(payload).await.map_err(classify)?;
                self.on_message(message).await
            }
            topics::CONVERSATION_EVENTS => {
                let event: ConversationEvent = codec.decode(payload).await.map_err(classify)?;
                self.on_conversation_event(event).await
            }
            _ => Ok(()),
        }
    }
}
