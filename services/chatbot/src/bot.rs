//! The edge around the engine: consumed events in, outbound commands and handoff events out,
//! sessions in Redis.
//!
//! Per event: load the session, [`decide`], produce the replies (and the handoff event), then
//! store the session over the revision that was read. Producing before storing means a crash
//! in between repeats the same decision on redelivery, with the same command ids (derived from
//! the event id and the reply's position, or for timeouts from the session's revision), which
//! the sender sends at most once; storing first could lose the replies. The session remembers
//! applied event ids, so a redelivery after the store changes nothing.

use caas_runtime::clock::now_millis;
use std::sync::Arc;
use std::time::Duration;

use caas_events::model::{
    Channel, Content, ConversationEvent, ConversationEventKind, InboundMessage, Origin,
    OutboundCommand,
};
use caas_events::{keys, topics, Codec};
use caas_kafka::{Handler, HandlerError, OutboundRecord, Producer, Record, TraceParent};

use crate::domain::engine::{decide, Event, Handling, Message};
use crate::domain::flow::TenantFlows;
use crate::domain::render;
use crate::domain::session::Session;
use crate::flows::FlowRegistry;
use crate::metrics::metrics;
use crate::store::Store;

/// How often a compare-and-set conflict is retried before the event goes back to Kafka.
const CONFLICT_RETRIES: usize = 5;

/// The bot.
pub struct Bot {
    /// The flows in force.
    pub registry: Arc<FlowRegistry>,
    /// Sessions and deadlines.
    pub store: Store,
    /// Avro through the registry.
    pub codec: Codec,
    /// Produces commands and handoff events.
    pub producer: Producer,
}

fn retryable(error: impl std::fmt::Display) -> HandlerError {
    HandlerError::retryable(error)
}

/// Where the ids of a decision's outputs come from.
enum Source<'a> {
    /// A consumed event.
    Event(&'a str),
    /// A timeout of the session at this revision.
    Timeout,
}

/// One conversation being handled.
struct Conversation<'a> {
    key: &'a str,
    tenant: &'a str,
    channel: Channel,
    customer: &'a str,
}

impl Handler for Bot {
    async fn handle(&self, record: &Record) -> Result<(), HandlerError> {
        let Some(payload) = record.payload.as_deref() else {
            return Ok(());
        };
        let poison_or_retry = |error: caas_events::DecodeError| {
            if error.is_poison() {
                HandlerError::poison(format!("undecodable record: {error}"))
            } else {
                retryable(format!("cannot decode the record yet: {error}"))
            }
        };
        if record.topic == topics::INBOUND_MESSAGES {
            let message: InboundMessage =
                self.codec.decode(payload).await.map_err(poison_or_retry)?;
            self.on_message(&message).await
        } else if record.topic == topics::CONVERSATION_EVENTS {
            let event: ConversationEvent =
                self.codec.decode(payload).await.map_err(poison_or_retry)?;
            self.on_handling(&event).await
        } else {
            Ok(())
        }
    }
}

impl Bot {
    async fn on_message(&self, message: &InboundMessage) -> Result<(), HandlerError> {
        let Some(flows) = self.registry.get(&message.tenant_id) else {
            metrics()
                .events
                .with_label_values(&["message", "no_flows"])
                .inc();
            return Ok(());
        };
        let (text, choice) = match &message.content {
            Content::Text(text) => (Some(text.body.as_str()), None),
            Content::InteractiveReply(reply) => {
                (None, Some((reply.id.as_str(), reply.title.as_str())))
            }
            _ => (None, None),
        };
        let event = Event::Message(Message {
            event_id: &message.event_id,
            at: message.occurred_at,
            text,
            choice,
            customer_name: message.customer_display_name.as_deref(),
            business_id: message.business_id.as_deref(),
            trace_parent: message.trace_parent.as_deref(),
        });
        let conversation = Conversation {
            key: &message.conversation_key,
            tenant: &message.tenant_id,
            channel: message.channel,
            customer: &message.customer_id,
        };
        self.apply(
            &conversation,
            &flows,
            &event,
            Source::Event(&message.event_id),
            "message",
        )
        .await
    }

    async fn on_handling(&self, event: &ConversationEvent) -> Result<(), HandlerError> {
        let Some(flows) = self.registry.get(&event.tenant_id) else {
            return Ok(());
        };
        let change = match event.kind {
            ConversationEventKind::HandoffToHuman | ConversationEventKind::Assigned => {
                Handling::ToHuman
            }
            ConversationEventKind::ReleasedToBot => Handling::ToBot,
            ConversationEventKind::Closed => Handling::Closed,
            // Opt-outs concern marketing (campaigns); a reply to the customer's own message is not.
            ConversationEventKind::Unassigned
            | ConversationEventKind::Reopened
            | ConversationEventKind::OptedOut
            | ConversationEventKind::OptedIn
            | ConversationEventKind::Unknown => Handling::Other,
        };
        let Some(parsed) = keys::parse_conversation_key(&event.conversation_key) else {
            return Err(HandlerError::poison(format!(
                "{:?} is not a conversation key",
                event.conversation_key
            )));
        };
        let conversation = Conversation {
            key: &event.conversation_key,
            tenant: &event.tenant_id,
            channel: event.channel,
            customer: parsed.customer_id,
        };
        let engine_event = Event::Handling {
            event_id: &event.event_id,
            at: event.occurred_at,
            change,
        };
        self.apply(
            &conversation,
            &flows,
            &engine_event,
            Source::Event(&event.event_id),
            "handling",
        )
        .await
    }

    /// Fire the due timeouts of the tenants this instance has flows for (called by the timer).
    pub async fn tick(&self) -> Result<usize, HandlerError> {
        let now = now_millis();
        let mut fired = 0;
        for tenant in self.registry.tenants() {
            let Some(flows) = self.registry.get(&tenant) else {
                continue;
            };
            let due = self.store.due(&tenant, now, 100).await.map_err(retryable)?;
            for key in due {
                let parsed =
                    keys::parse_conversation_key(&key).filter(|parsed| parsed.tenant_id == tenant);
                let Some(parsed) = parsed else {
                    self.store
                        .set_deadline(&tenant, &key, None)
                        .await
                        .map_err(retryable)?;
                    continue;
                };
                let conversation = Conversation {
                    key: &key,
                    tenant: parsed.tenant_id,
                    channel: parsed.channel,
                    customer: parsed.customer_id,
                };
                self.apply(
                    &conversation,
                    &flows,
                    &Event::Timeout { at: now },
                    Source::Timeout,
                    "timeout",
                )
                .await?;
                fired += 1;
            }
        }
        Ok(fired)
    }

    async fn apply(
        &self,
        conversation: &Conversation<'_>,
        flows: &TenantFlows,
        event: &Event<'_>,
        source: Source<'_>,
        kind: &str,
    ) -> Result<(), HandlerError> {
        for _ in 0..CONFLICT_RETRIES {
            let session = self.store.load(conversation.key).await.map_err(retryable)?;
            let decision = decide(flows, session.as_ref(), event, conversation.customer);
            if !decision.changed {
                // Keep the deadline set in step with the session (a crash may have left it).
                if matches!(source, Source::Timeout) {
                    let deadline = session.as_ref().and_then(|session| session.deadline);
                    self.store
                        .set_deadline(conversation.tenant, conversation.key, deadline)
                        .await
                        .map_err(retryable)?;
                }
                metrics()
                    .events
                    .with_label_values(&[kind, "duplicate"])
                    .inc();
                return Ok(());
            }
            let read_revision = session.as_ref().map(|session| session.revision);
            let prefix: Vec<String> = match &source {
                Source::Event(event_id) => vec!["chatbot".to_string(), (*event_id).to_string()],
                Source::Timeout => vec![
                    "chatbot".to_string(),
                    "timeout".to_string(),
                    conversation.key.to_string(),
                    read_revision.unwrap_or_default().to_string(),
                ],
            };
            self.produce(
                conversation,
                &decision.session,
                &decision.replies,
                decision.handoff.as_deref(),
                &prefix,
            )
            .await?;
            if self
                .store
                .save(conversation.key, &decision.session, read_revision)
                .await
                .map_err(retryable)?
            {
                self.store
                    .set_deadline(
                        conversation.tenant,
                        conversation.key,
                        decision.session.deadline,
                    )
                    .await
                    .map_err(retryable)?;
                let outcome = if decision.replies.is_empty() {
                    "silent"
                } else {
                    "replied"
                };
                metrics().events.with_label_values(&[kind, outcome]).inc();
                return Ok(());
            }
            tracing::info!(conversation = %conversation.key, "session changed concurrently; deciding again");
        }
        Err(retryable(format!(
            "the session of {} kept changing concurrently",
            conversation.key
        )))
    }

    async fn produce(
        &self,
        conversation: &Conversation<'_>,
        session: &Session,
        replies: &[render::Reply],
        handoff: Option<&str>,
        id_prefix: &[String],
    ) -> Result<(), HandlerError> {
        let now = now_millis();
        let trace = session
            .trace_parent
            .as_deref()
            .and_then(|text| TraceParent::parse(text).ok());
        let with_trace = |record: OutboundRecord| match &trace {
            Some(traceparent) => record.with_traceparent(traceparent),
            None => record,
        };
        let id_of = |suffix: &str| {
            let mut parts: Vec<&str> = id_prefix.iter().map(String::as_str).collect();
            parts.push(suffix);
            keys::deterministic_event_id(&parts)
        };
        let mut records = Vec::new();
        for (index, reply) in replies.iter().enumerate() {
            let command_id = id_of(&index.to_string());
            let command = OutboundCommand {
                event_id: command_id.clone(),
                tenant_id: conversation.tenant.to_string(),
                conversation_key: conversation.key.to_string(),
                channel: conversation.channel,
                occurred_at: now,
                recorded_at: now,
                source: crate::SERVICE.to_string(),
                trace_parent: session.trace_parent.clone(),
                command_id,
                to: conversation.customer.to_string(),
                content: render::content(reply, conversation.channel),
                origin: Origin::Bot,
                campaign_id: None,
                reply_to: None,
                operator_id: None,
                business_id: session.business_id.clone(),
                callback_data: None,
            };
            let bytes = self
                .codec
                .encode(&command)
                .await
                .map_err(|error| retryable(format!("cannot encode a reply: {error}")))?;
            records.push(with_trace(OutboundRecord::new(
                topics::OUTBOUND_COMMANDS,
                conversation.key.to_string(),
                bytes,
            )));
        }
        if let Some(reason) = handoff {
            let event = ConversationEvent {
                event_id: id_of("handoff"),
                tenant_id: conversation.tenant.to_string(),
                conversation_key: conversation.key.to_string(),
                channel: conversation.channel,
                occurred_at: now,
                recorded_at: now,
                source: crate::SERVICE.to_string(),
                trace_parent: session.trace_parent.clone(),
                kind: ConversationEventKind::HandoffToHuman,
                actor_operator_id: None,
                assignee_operator_id: None,
                previous_assignee_operator_id: None,
                reason: Some(reason.to_string()),
            };
            let bytes = self
                .codec
                .encode(&event)
                .await
                .map_err(|error| retryable(format!("cannot encode the handoff: {error}")))?;
            records.push(with_trace(OutboundRecord::new(
                topics::CONVERSATION_EVENTS,
                conversation.key.to_string(),
                bytes,
            )));
            metrics()
                .handoffs
                .with_label_values(&[conversation.channel.as_str()])
                .inc();
        }
        if records.is_empty() {
            return Ok(());
        }
        // Enqueued in order, so the replies of one event keep their order on the partition.
        for outcome in self.producer.send_all(records).await {
            outcome
                .map_err(|error| retryable(format!("cannot produce the bot's output: {error}")))?;
        }
        metrics()
            .replies
            .with_label_values(&[conversation.channel.as_str()])
            .inc_by(replies.len() as u64);
        Ok(())
    }
}

/// Fire due timeouts every `interval` until `stop`.
pub async fn run_timer(
    bot: Arc<Bot>,
    interval: Duration,
    stop: caas_runtime::shutdown::CancellationToken,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        match bot.tick().await {
            Ok(0) => {}
            Ok(fired) => tracing::debug!(fired, "timeouts handled"),
            Err(error) => {
                tracing::warn!(error = %error, "timeouts could not be handled; retrying on the next tick")
            }
        }
    }
}
