//! Deterministic mixed event streams for tests, benches and load tools: conversations with
//! inbound messages, handoffs, outbound sends with their results and provider statuses in
//! shuffled order (statuses before results, `read` without `delivered`), presence updates,
//! campaign events and exact duplicates (webhook retries) — plus what the logger must end with.

use std::collections::{BTreeMap, BTreeSet};

use caas_events::keys::{campaign_key, conversation_key, deterministic_event_id};
use caas_events::model::{
    CampaignCounts, CampaignEvent, CampaignEventKind, Channel, Content, ConversationEvent,
    ConversationEventKind, InboundMessage, InboundStatus, MessageStatus, Origin, OutboundCommand,
    OutboundResult, PresenceKind, PresenceSubject, PresenceUpdate, ProviderError, SendError,
    SendOutcome, Text,
};
use caas_events::{Codec, EncodeError};

use crate::domain::docs::{inbound_message_id, outbound_message_id};
use crate::domain::event::LoggedEvent;
use crate::domain::status::DeliveryStatus;

/// The shape of a scenario.
#[derive(Debug, Clone)]
pub struct ScenarioConfig {
    /// The tenant (make it unique per test run).
    pub tenant_id: String,
    /// Makes every id unique to this run.
    pub run_id: String,
    /// How many conversations (customers).
    pub conversations: usize,
    /// Customer messages per conversation.
    pub inbound_per_conversation: usize,
    /// Outbound sends per conversation.
    pub outbound_per_conversation: usize,
    /// Seeds the shuffles and choices.
    pub seed: u64,
    /// The first `occurred_at`, epoch ms.
    pub start_ms: i64,
}

/// What the logger must have stored once every event of a scenario was consumed.
#[derive(Debug, Clone, Default)]
pub struct Expected {
    /// Every distinct event id.
    pub event_ids: BTreeSet<String>,
    /// Per conversation key: the number of distinct events that change it (its final `seq`).
    pub changes: BTreeMap<String, i64>,
    /// Per outbound message id: its final status.
    pub outbound_status: BTreeMap<String, String>,
    /// Every inbound message id.
    pub inbound_messages: BTreeSet<String>,
    /// Per conversation key: its customer id.
    pub customers: BTreeMap<String, String>,
}

/// A generated stream.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The events in production order (duplicates included).
    pub events: Vec<LoggedEvent>,
    /// The end state.
    pub expected: Expected,
}

/// splitmix64: small, deterministic, good enough for shuffles.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut mixed = self.0;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        mixed ^ (mixed >> 31)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound.max(1) as u64) as usize
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for index in (1..items.len()).rev() {
            let other = self.below(index + 1);
            items.swap(index, other);
        }
    }
}

fn text(body: String) -> Content {
    Content::Text(Text {
        body,
        preview_url: false,
    })
}

/// Generate a scenario.
pub fn generate(config: &ScenarioConfig) -> Scenario {
    let mut rng = Rng(config.seed);
    let mut events: Vec<LoggedEvent> = Vec::new();
    let mut expected = Expected::default();
    let tenant = config.tenant_id.as_str();
    let run = config.run_id.as_str();
    let mut clock = config.start_ms;
    let mut tick = || {
        clock += 7;
        clock
    };
    for conversation in 0..config.conversations {
        let channel = if conversation % 3 == 2 {
            Channel::Rcs
        } else {
            Channel::Whatsapp
        };
        let customer = format!("49{:05}{}", conversation, &run[..run.len().min(6)]);
        let key = conversation_key(tenant, channel, &customer);
        expected.customers.insert(key.clone(), customer.clone());
        let mut changes = 0i64;
        for index in 0..config.inbound_per_conversation {
            let provider_id = format!("wamid.{run}.{conversation}.{index}");
            let at = tick();
            events.push(LoggedEvent::InboundMessage(InboundMessage {
                event_id: deterministic_event_id(&[run, "in", &provider_id]),
                tenant_id: tenant.to_string(),
                conversation_key: key.clone(),
                channel,
                occurred_at: at,
                recorded_at: at + 1,
                source: "scenario".to_string(),
                trace_parent: None,
                provider_message_id: provider_id.clone(),
                customer_id: customer.clone(),
                customer_display_name: Some(format!("Customer {conversation}")),
                business_id: None,
                reply_to: None,
                content: text(format!("hello {index} from {conversation}")),
            }));
            expected
                .inbound_messages
                .insert(inbound_message_id(channel.as_str(), &provider_id));
            changes += 1;
        }
        for (index, kind) in [
            ConversationEventKind::HandoffToHuman,
            ConversationEventKind::Assigned,
        ]
        .into_iter()
        .enumerate()
        {
            let at = tick();
            events.push(LoggedEvent::ConversationEvent(ConversationEvent {
                event_id: deterministic_event_id(&[run, "conversation", &key, &index.to_string()]),
                tenant_id: tenant.to_string(),
                conversation_key: key.clone(),
                channel,
                occurred_at: at,
                recorded_at: at + 1,
                source: "scenario".to_string(),
                trace_parent: None,
                kind,
                actor_operator_id: Some("op-1".to_string()),
                assignee_operator_id: (kind == ConversationEventKind::Assigned)
                    .then(|| "op-1".to_string()),
                previous_assignee_operator_id: None,
                reason: None,
            }));
            changes += 1;
        }
        for index in 0..config.outbound_per_conversation {
            let command_id = format!("{run}-{conversation}-{index}");
            let message_id = outbound_message_id(tenant, &command_id);
            let origin = if index % 2 == 0 {
                Origin::Operator
            } else {
                Origin::Bot
            };
            let at = tick();
            events.push(LoggedEvent::OutboundCommand(OutboundCommand {
                event_id: deterministic_event_id(&[run, "command", &command_id]),
                tenant_id: tenant.to_string(),
                conversation_key: key.clone(),
                channel,
                occurred_at: at,
                recorded_at: at + 1,
                source: "scenario".to_string(),
                trace_parent: None,
                command_id: command_id.clone(),
                to: customer.clone(),
                content: text(format!("answer {index} to {conversation}")),
                origin,
                campaign_id: None,
                reply_to: None,
                operator_id: (origin == Origin::Operator).then(|| "op-1".to_string()),
                business_id: None,
                callback_data: None,
            }));
            changes += 1;
            let accepted = rng.below(10) != 0;
            let provider_id = format!("out.{run}.{conversation}.{index}");
            let result_at = tick();
            events.push(LoggedEvent::OutboundResult(OutboundResult {
                event_id: deterministic_event_id(&[run, "result", &command_id]),
                tenant_id: tenant.to_string(),
                conversation_key: key.clone(),
                channel,
                occurred_at: result_at,
                recorded_at: result_at + 1,
                source: "scenario".to_string(),
                trace_parent: None,
                command_id: command_id.clone(),
                outcome: if accepted {
                    SendOutcome::Accepted
                } else {
                    SendOutcome::Failed
                },
                provider_message_id: accepted.then(|| provider_id.clone()),
                error: (!accepted).then(|| SendError {
                    code: "131026".to_string(),
                    reason: "undeliverable".to_string(),
                    retryable: false,
                }),
                origin,
                campaign_id: None,
                attempts: 1,
            }));
            changes += 1;
            let mut final_status = if accepted {
                DeliveryStatus::Accepted
            } else {
                DeliveryStatus::Failed
            };
            if accepted {
                let statuses: Vec<MessageStatus> = match rng.below(6) {
                    0 => vec![],
                    1 => vec![MessageStatus::Sent],
                    2 => vec![MessageStatus::Sent, MessageStatus::Delivered],
                    3 => vec![
                        MessageStatus::Sent,
                        MessageStatus::Delivered,
                        MessageStatus::Read,
                    ],
                    4 => vec![MessageStatus::Read],
                    _ => vec![MessageStatus::Sent, MessageStatus::Failed],
                };
                for status in statuses {
                    let status_at = tick();
                    let status_name = format!("{status:?}");
                    events.push(LoggedEvent::InboundStatus(InboundStatus {
                        event_id: deterministic_event_id(&[
                            run,
                            "status",
                            &provider_id,
                            &status_name,
                        ]),
                        tenant_id: tenant.to_string(),
                        conversation_key: key.clone(),
                        channel,
                        occurred_at: status_at,
                        recorded_at: status_at + 1,
                        source: "scenario".to_string(),
                        trace_parent: None,
                        provider_message_id: provider_id.clone(),
                        status,
                        recipient_id: customer.clone(),
                        business_id: None,
                        errors: if status == MessageStatus::Failed {
                            vec![ProviderError {
                                code: "131047".to_string(),
                                title: "re-engagement message".to_string(),
                                message: None,
                                details: None,
                            }]
                        } else {
                            vec![]
                        },
                        conversation: None,
                        pricing: None,
                        biz_opaque_callback_data: None,
                    }));
                    changes += 1;
                    let reached = match status {
                        MessageStatus::Sent => DeliveryStatus::Sent,
                        MessageStatus::Delivered => DeliveryStatus::Delivered,
                        MessageStatus::Read => DeliveryStatus::Read,
                        MessageStatus::Failed => DeliveryStatus::Failed,
                    };
                    final_status = final_status.max(reached);
                }
            }
            expected
                .outbound_status
                .insert(message_id, final_status.as_str().to_string());
        }
        let typing_at = tick();
        events.push(LoggedEvent::PresenceUpdate(PresenceUpdate {
            event_id: deterministic_event_id(&[run, "presence", &key]),
            tenant_id: tenant.to_string(),
            conversation_key: key.clone(),
            channel: Some(channel),
            occurred_at: typing_at,
            recorded_at: typing_at + 1,
            source: "scenario".to_string(),
            trace_parent: None,
            kind: PresenceKind::Typing,
            subject: PresenceSubject::Customer,
            subject_id: customer.clone(),
            active: true,
            last_seen_at: Some(typing_at),
            read_provider_message_id: None,
            expires_at: Some(typing_at + 6_000),
        }));
        expected.changes.insert(key, changes);
    }
    let campaign = campaign_key(tenant, &format!("campaign-{run}"));
    for step in 0..3 {
        let at = tick();
        events.push(LoggedEvent::CampaignEvent(CampaignEvent {
            event_id: deterministic_event_id(&[run, "campaign", &step.to_string()]),
            tenant_id: tenant.to_string(),
            conversation_key: campaign.clone(),
            channel: Channel::Whatsapp,
            occurred_at: at,
            recorded_at: at + 1,
            source: "scenario".to_string(),
            trace_parent: None,
            campaign_id: format!("campaign-{run}"),
            kind: CampaignEventKind::Progress,
            command_id: None,
            counts: CampaignCounts::default(),
            reason: None,
        }));
    }
    rng.shuffle(&mut events);
    // Webhook retries: about 2% of the events again, later in the stream.
    let duplicates = events.len() / 50;
    for _ in 0..duplicates {
        let source = rng.below(events.len());
        let copy = events[source].clone();
        let position = source + 1 + rng.below(events.len() - source);
        events.insert(position.min(events.len()), copy);
    }
    expected.event_ids = events
        .iter()
        .map(|event| event.event_id().to_string())
        .collect();
    Scenario { events, expected }
}

/// Encode an event through the registry in the wire format of its topic.
pub async fn encode(codec: &Codec, event: &LoggedEvent) -> Result<Vec<u8>, EncodeError> {
    match event {
        LoggedEvent::InboundMessage(inner) => codec.encode(inner).await,
        LoggedEvent::InboundStatus(inner) => codec.encode(inner).await,
        LoggedEvent::OutboundCommand(inner) => codec.encode(inner).await,
        LoggedEvent::OutboundResult(inner) => codec.encode(inner).await,
        LoggedEvent::ConversationEvent(inner) => codec.encode(inner).await,
        LoggedEvent::PresenceEvent(inner) => codec.encode(inner).await,
        LoggedEvent::PresenceUpdate(inner) => codec.encode(inner).await,
        LoggedEvent::CampaignCommand(inner) => codec.encode(inner).await,
        LoggedEvent::CampaignEvent(inner) => codec.encode(inner).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ScenarioConfig {
        ScenarioConfig {
            tenant_id: "acme".to_string(),
            run_id: "run1".to_string(),
            conversations: 5,
            inbound_per_conversation: 3,
            outbound_per_conversation: 4,
            seed: 7,
            start_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn scenarios_are_deterministic_and_hold_duplicates() {
        let first = generate(&config());
        let second = generate(&config());
        assert_eq!(first.events, second.events);
        assert!(first.events.len() > first.expected.event_ids.len());
        assert_eq!(first.expected.changes.len(), 5);
        assert_eq!(first.expected.outbound_status.len(), 20);
        assert_eq!(first.expected.inbound_messages.len(), 15);
    }
}
