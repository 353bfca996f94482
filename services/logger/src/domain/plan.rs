//! The pure heart of the logger: given a batch of decoded events and the stored documents they
//! touch, compute every document to write. No I/O; the store loads a [`Snapshot`], calls
//! [`plan`] and writes the [`Plan`] in one transaction.
//!
//! Rules (the README explains why):
//!
//! - an event already in `events`, or seen earlier in the batch, is skipped entirely: all of its
//!   effects were committed together with it;
//! - an event of the five conversation topics gets the conversation's next `seq`, in batch
//!   order (Kafka order per partition), and changes the conversation and at most one message;
//!   the message's `seq` becomes the highest `seq` of the events that changed it;
//! - a status whose provider message id no stored message claims goes to `orphan_statuses`;
//!   the send result that names that id later folds the orphan into its message;
//! - an event about a customer who was erased after the event was recorded is dropped, so a
//!   replay from Kafka cannot bring erased data back.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use caas_events::keys::parse_conversation_key;
use caas_events::model::{
    ConversationEventKind, InboundStatus, MessageStatus, Origin, OutboundCommand, OutboundResult,
    SendOutcome,
};
use mongodb::bson::DateTime;
use sha2::{Digest, Sha256};

use super::docs::{
    inbound_message_id, orphan_status_id, outbound_message_id, ConversationDoc, ConversationState,
    Direction, EventDoc, LastMessage, MessageDoc, Mode, OrphanStatusDoc,
};
use super::event::{summarize, Incoming, LoggedEvent};
use super::status::{DeliveryStatus, MessageError, StatusObservation, StatusSet};

/// The stored documents a batch may touch, as loaded before planning.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Ids of the batch's events that are already in `events`.
    pub stored_event_ids: HashSet<String>,
    /// Conversations by key.
    pub conversations: HashMap<String, ConversationDoc>,
    /// Messages by `_id`: those the batch names, and the outbound ones claiming the provider
    /// ids of the batch's statuses.
    pub messages: HashMap<String, MessageDoc>,
    /// Orphan statuses by `_id`.
    pub orphans: HashMap<String, OrphanStatusDoc>,
    /// Erasures by [`subject_hash`]: when the customer was erased, epoch milliseconds.
    pub erasures: HashMap<String, i64>,
}

/// What the store must load for a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needs {
    /// Every event id of the batch.
    pub event_ids: Vec<String>,
    /// Conversation keys of the conversation events.
    pub conversation_keys: Vec<String>,
    /// Message ids named by messages, commands and results.
    pub message_ids: Vec<String>,
    /// Provider message ids of the statuses (outbound messages claiming them are loaded).
    pub provider_message_ids: Vec<String>,
    /// Orphan status ids of statuses and results.
    pub orphan_ids: Vec<String>,
    /// Subject hashes of the customers the events are about.
    pub subject_hashes: Vec<String>,
}

/// What to write for a batch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Events to insert (none of them stored yet).
    pub events: Vec<EventDoc>,
    /// Conversations to replace (or insert).
    pub conversations: Vec<ConversationDoc>,
    /// Messages to replace (or insert).
    pub messages: Vec<MessageDoc>,
    /// Orphan statuses to replace (or insert).
    pub orphans: Vec<OrphanStatusDoc>,
    /// Orphan statuses folded into their message, to delete.
    pub orphans_to_delete: Vec<String>,
    /// Events skipped because they were stored already (or repeated in the batch).
    pub duplicates: usize,
    /// Events skipped because their customer was erased after they were recorded.
    pub erased: usize,
}

/// The erasure record's identifier of a customer: SHA-256 of `<tenant>:<customer>`, hex. The
/// record of an erasure must not keep the identifier it erased.
pub fn subject_hash(tenant_id: &str, customer_id: &str) -> String {
    hex::encode(Sha256::digest(
        format!("{tenant_id}:{customer_id}").as_bytes(),
    ))
}

fn channel_of(key: &str) -> String {
    parse_conversation_key(key)
        .map(|parsed| parsed.channel.as_str().to_string())
        .unwrap_or_default()
}

/// What to load for `incoming`.
pub fn needs(incoming: &[Incoming]) -> Needs {
    let mut needs = Needs::default();
    let mut conversation_keys = BTreeSet::new();
    let mut message_ids = BTreeSet::new();
    let mut provider_ids = BTreeSet::new();
    let mut orphan_ids = BTreeSet::new();
    let mut subjects = BTreeSet::new();
    for item in incoming {
        let event = &item.event;
        needs.event_ids.push(event.event_id().to_string());
        for customer in event.customer_ids() {
            subjects.insert(subject_hash(event.tenant_id(), &customer));
        }
        if event.changes_conversation() {
            conversation_keys.insert(event.conversation_key().to_string());
        }
        let tenant = event.tenant_id();
        match event {
            LoggedEvent::InboundMessage(message) => {
                message_ids.insert(inbound_message_id(
                    message.channel.as_str(),
                    &message.provider_message_id,
                ));
            }
            LoggedEvent::OutboundCommand(command) => {
                message_ids.insert(outbound_message_id(tenant, &command.command_id));
            }
            LoggedEvent::OutboundResult(result) => {
                message_ids.insert(outbound_message_id(tenant, &result.command_id));
                if let Some(provider_id) = &result.provider_message_id {
                    orphan_ids.insert(orphan_status_id(
                        tenant,
                        result.channel.as_str(),
                        provider_id,
                    ));
                }
            }
            LoggedEvent::InboundStatus(status) => {
                provider_ids.insert(status.provider_message_id.clone());
                orphan_ids.insert(orphan_status_id(
                    tenant,
                    status.channel.as_str(),
                    &status.provider_message_id,
                ));
            }
            _ => {}
        }
    }
    needs.conversation_keys = conversation_keys.into_iter().collect();
    needs.message_ids = message_ids.into_iter().collect();
    needs.provider_message_ids = provider_ids.into_iter().collect();
    needs.orphan_ids = orphan_ids.into_iter().collect();
    needs.subject_hashes = subjects.into_iter().collect();
    needs
}

/// (tenant, channel, provider message id).
type ProviderKey = (String, String, String);

/// The working state of one planning run.
struct Planner {
    now: DateTime,
    conversations: HashMap<String, ConversationDoc>,
    messages: HashMap<String, MessageDoc>,
    orphans: HashMap<String, OrphanStatusDoc>,
    /// Outbound messages by provider id, from the snapshot and from results in the batch.
    by_provider_id: HashMap<ProviderKey, String>,
    touched_conversations: BTreeSet<String>,
    touched_messages: BTreeSet<String>,
    touched_orphans: BTreeSet<String>,
    deleted_orphans: BTreeSet<String>,
}

/// Compute the writes for `incoming` (in poll order) against `snapshot`, at `now_ms`.
pub fn plan(incoming: &[Incoming], snapshot: Snapshot, now_ms: i64) -> Plan {
    let now = DateTime::from_millis(now_ms);
    let by_provider_id = snapshot
        .messages
        .values()
        .filter(|message| message.direction == Direction::Outbound)
        .filter_map(|message| {
            message.provider_message_id.as_ref().map(|provider_id| {
                (
                    (
                        message.tenant_id.clone(),
                        message.channel.clone(),
                        provider_id.clone(),
                    ),
                    message.id.clone(),
                )
            })
        })
        .collect();
    let mut planner = Planner {
        now,
        conversations: snapshot.conversations,
        messages: snapshot.messages,
        orphans: snapshot.orphans,
        by_provider_id,
        touched_conversations: BTreeSet::new(),
        touched_messages: BTreeSet::new(),
        touched_orphans: BTreeSet::new(),
        deleted_orphans: BTreeSet::new(),
    };
    let mut result = Plan::default();
    let mut seen: HashSet<&str> = HashSet::new();
    for item in incoming {
        let event = &item.event;
        let event_id = event.event_id();
        if snapshot.stored_event_ids.contains(event_id) || !seen.insert(event_id) {
            result.duplicates += 1;
            continue;
        }
        let erased = event.customer_ids().iter().any(|customer| {
            snapshot
                .erasures
                .get(&subject_hash(event.tenant_id(), customer))
                .is_some_and(|erased_at| event.recorded_at() <= *erased_at)
        });
        if erased {
            result.erased += 1;
            continue;
        }
        let payload = event.to_document().unwrap_or_default();
        let mut document = EventDoc {
            id: event_id.to_string(),
            event_type: event.type_name().to_string(),
            topic: item.topic.clone(),
            partition: item.partition,
            offset: item.offset,
            key: item.key.clone(),
            tenant_id: event.tenant_id().to_string(),
            conversation_key: event.conversation_key().to_string(),
            customer_ids: event.customer_ids(),
            seq: None,
            message_id: None,
            occurred_at: DateTime::from_millis(event.occurred_at()),
            recorded_at: DateTime::from_millis(event.recorded_at()),
            stored_at: now,
            payload,
        };
        if event.changes_conversation() {
            let seq = planner.next_seq(event);
            document.seq = Some(seq);
            document.message_id = planner.apply_to_message(event, seq);
            planner.apply_to_conversation(event, seq, document.message_id.as_deref());
        }
        result.events.push(document);
    }
    let Planner {
        conversations,
        mut messages,
        mut orphans,
        touched_conversations,
        touched_messages,
        touched_orphans,
        deleted_orphans,
        ..
    } = planner;
    let mut conversations = conversations;
    result.conversations = touched_conversations
        .iter()
        .filter_map(|key| conversations.remove(key))
        .collect();
    result.messages = touched_messages
        .iter()
        .filter_map(|id| messages.remove(id))
        .collect();
    result.orphans = touched_orphans
        .iter()
        .filter(|id| !deleted_orphans.contains(*id))
        .filter_map(|id| orphans.remove(id))
        .collect();
    result.orphans_to_delete = deleted_orphans.into_iter().collect();
    result
}

impl Planner {
    /// Bump the conversation's sequence and return the event's number.
    fn next_seq(&mut self, event: &LoggedEvent) -> i64 {
        let key = event.conversation_key();
        let now = self.now;
        let conversation = self
            .conversations
            .entry(key.to_string())
            .or_insert_with(|| {
                let parsed = parse_conversation_key(key);
                ConversationDoc::new(
                    key,
                    event.tenant_id(),
                    &channel_of(key),
                    parsed.map(|parsed| parsed.customer_id).unwrap_or_default(),
                    now,
                )
            });
        conversation.seq += 1;
        conversation.updated_at = now;
        self.touched_conversations.insert(key.to_string());
        conversation.seq
    }

    fn apply_to_conversation(&mut self, event: &LoggedEvent, seq: i64, message_id: Option<&str>) {
        let Some(conversation) = self.conversations.get_mut(event.conversation_key()) else {
            return;
        };
        let message = message_id.and_then(|id| self.messages.get(id));
        match event {
            LoggedEvent::InboundMessage(inbound) => {
                conversation.unread_count += 1;
                let at = DateTime::from_millis(inbound.occurred_at);
                conversation.last_inbound_at = Some(
                    conversation
                        .last_inbound_at
                        .map_or(at, |previous| previous.max(at)),
                );
                if let Some(name) = &inbound.customer_display_name {
                    conversation.customer_display_name = Some(name.clone());
                }
                conversation.state = ConversationState::Open;
                if let Some(message) = message {
                    offer_last_message(conversation, message, inbound.occurred_at, seq);
                }
            }
            LoggedEvent::OutboundCommand(command) => {
                if command.origin == Origin::Operator {
                    conversation.unread_count = 0;
                }
                if let Some(message) = message {
                    offer_last_message(conversation, message, command.occurred_at, seq);
                }
            }
            LoggedEvent::ConversationEvent(change) => match change.kind {
                ConversationEventKind::HandoffToHuman => conversation.mode = Mode::Human,
                ConversationEventKind::Assigned => {
                    conversation.mode = Mode::Human;
                    conversation.assignee = change.assignee_operator_id.clone();
                }
                ConversationEventKind::Unassigned => conversation.assignee = None,
                ConversationEventKind::ReleasedToBot => {
                    conversation.mode = Mode::Bot;
                    conversation.assignee = None;
                }
                ConversationEventKind::Closed => conversation.state = ConversationState::Closed,
                ConversationEventKind::Reopened => conversation.state = ConversationState::Open,
                ConversationEventKind::OptedOut => conversation.opted_out = true,
                ConversationEventKind::OptedIn => conversation.opted_out = false,
                ConversationEventKind::Unknown => {}
            },
            _ => {}
        }
    }

    /// Apply the event to its message; returns the message's id when one was changed.
    fn apply_to_message(&mut self, event: &LoggedEvent, seq: i64) -> Option<String> {
        let now = self.now;
        let key = event.conversation_key().to_string();
        let customer = parse_conversation_key(&key)
            .map(|parsed| parsed.customer_id.to_string())
            .unwrap_or_default();
        let tenant = event.tenant_id().to_string();
        match event {
            LoggedEvent::InboundMessage(inbound) => {
                let channel = inbound.channel.as_str();
                let id = inbound_message_id(channel, &inbound.provider_message_id);
                let message = self.messages.entry(id.clone()).or_insert_with(|| {
                    MessageDoc::empty(
                        id.clone(),
                        Direction::Inbound,
                        &tenant,
                        &key,
                        channel,
                        &customer,
                        now,
                    )
                });
                if message.content.is_none() {
                    let (content_type, preview) = summarize(&inbound.content);
                    message.content = mongodb::bson::to_document(&inbound.content).ok();
                    message.content_type = Some(content_type.to_string());
                    message.preview = preview;
                    message.provider_message_id = Some(inbound.provider_message_id.clone());
                    message.reply_to = inbound
                        .reply_to
                        .as_ref()
                        .map(|reply| reply.provider_message_id.clone());
                    message.created_at = Some(DateTime::from_millis(inbound.occurred_at));
                }
                self.touch_message(&id, seq);
                Some(id)
            }
            LoggedEvent::OutboundCommand(command) => {
                let id = self.outbound_message(
                    &tenant,
                    &key,
                    &customer,
                    command.channel.as_str(),
                    &command.command_id,
                );
                self.fill_from_command(&id, command);
                self.touch_message(&id, seq);
                Some(id)
            }
            LoggedEvent::OutboundResult(result) => {
                let channel = result.channel.as_str();
                let id =
                    self.outbound_message(&tenant, &key, &customer, channel, &result.command_id);
                self.apply_result(&id, &tenant, result);
                self.touch_message(&id, seq);
                Some(id)
            }
            LoggedEvent::InboundStatus(status) => self.apply_status(&tenant, &key, status, seq),
            _ => None,
        }
    }

    fn outbound_message(
        &mut self,
        tenant: &str,
        key: &str,
        customer: &str,
        channel: &str,
        command_id: &str,
    ) -> String {
        let id = outbound_message_id(tenant, command_id);
        let now = self.now;
        let message = self.messages.entry(id.clone()).or_insert_with(|| {
            MessageDoc::empty(
                id.clone(),
                Direction::Outbound,
                tenant,
                key,
                channel,
                customer,
                now,
            )
        });
        message.command_id = Some(command_id.to_string());
        id
    }

    fn fill_from_command(&mut self, id: &str, command: &OutboundCommand) {
        let Some(message) = self.messages.get_mut(id) else {
            return;
        };
        let (content_type, preview) = summarize(&command.content);
        message.content = mongodb::bson::to_document(&command.content).ok();
        message.content_type = Some(content_type.to_string());
        message.preview = preview;
        message.origin = Some(origin_name(command.origin).to_string());
        message.operator_id = command.operator_id.clone();
        message.campaign_id = command.campaign_id.clone();
        message.reply_to = command.reply_to.clone();
        message.created_at = Some(DateTime::from_millis(command.occurred_at));
        message.observe(StatusObservation {
            status: DeliveryStatus::Queued,
            at: command.occurred_at,
            event_id: command.event_id.clone(),
            error: None,
        });
    }

    fn apply_result(&mut self, id: &str, tenant: &str, result: &OutboundResult) {
        let channel = result.channel.as_str().to_string();
        let Some(message) = self.messages.get_mut(id) else {
            return;
        };
        message.send_attempts = Some(result.attempts);
        if message.origin.is_none() {
            message.origin = Some(origin_name(result.origin).to_string());
            message.campaign_id = result.campaign_id.clone();
        }
        let observation = match result.outcome {
            SendOutcome::Accepted => StatusObservation {
                status: DeliveryStatus::Accepted,
                at: result.occurred_at,
                event_id: result.event_id.clone(),
                error: None,
            },
            SendOutcome::Failed => StatusObservation {
                status: DeliveryStatus::Failed,
                at: result.occurred_at,
                event_id: result.event_id.clone(),
                error: Some(result.error.as_ref().map_or_else(
                    || MessageError {
                        code: "send_failed".to_string(),
                        title: "the sender reported a failure without a reason".to_string(),
                        detail: None,
                    },
                    |error| MessageError {
                        code: error.code.clone(),
                        title: error.reason.clone(),
                        detail: None,
                    },
                )),
            },
        };
        let mut set = message.status_set();
        set.observe(observation);
        if let Some(provider_id) = &result.provider_message_id {
            message.provider_message_id = Some(provider_id.clone());
            self.by_provider_id.insert(
                (tenant.to_string(), channel.clone(), provider_id.clone()),
                id.to_string(),
            );
            let orphan_id = orphan_status_id(tenant, &channel, provider_id);
            if let Some(orphan) = self.orphans.remove(&orphan_id) {
                set.merge(&StatusSet::from_observations(orphan.statuses));
                self.deleted_orphans.insert(orphan_id);
            }
        }
        message.set_statuses(&set);
    }

    fn apply_status(
        &mut self,
        tenant: &str,
        key: &str,
        status: &InboundStatus,
        seq: i64,
    ) -> Option<String> {
        let channel = status.channel.as_str().to_string();
        let observation = StatusObservation {
            status: match status.status {
                MessageStatus::Sent => DeliveryStatus::Sent,
                MessageStatus::Delivered => DeliveryStatus::Delivered,
                MessageStatus::Read => DeliveryStatus::Read,
                MessageStatus::Failed => DeliveryStatus::Failed,
            },
            at: status.occurred_at,
            event_id: status.event_id.clone(),
            error: (status.status == MessageStatus::Failed).then(|| {
                status.errors.first().map_or_else(
                    || MessageError {
                        code: "failed".to_string(),
                        title: "the provider reported a failure without a reason".to_string(),
                        detail: None,
                    },
                    |error| MessageError {
                        code: error.code.clone(),
                        title: error.title.clone(),
                        detail: error.message.clone().or_else(|| error.details.clone()),
                    },
                )
            }),
        };
        let provider_key = (
            tenant.to_string(),
            channel.clone(),
            status.provider_message_id.clone(),
        );
        if let Some(id) = self.by_provider_id.get(&provider_key).cloned() {
            if let Some(message) = self.messages.get_mut(&id) {
                message.observe(observation);
                self.touch_message(&id, seq);
                return Some(id);
            }
        }
        let orphan_id = orphan_status_id(tenant, &channel, &status.provider_message_id);
        let now = self.now;
        let orphan = self
            .orphans
            .entry(orphan_id.clone())
            .or_insert_with(|| OrphanStatusDoc {
                id: orphan_id.clone(),
                tenant_id: tenant.to_string(),
                conversation_key: key.to_string(),
                channel: channel.clone(),
                provider_message_id: status.provider_message_id.clone(),
                statuses: Vec::new(),
                seq: 0,
                updated_at: now,
            });
        let mut set = StatusSet::from_observations(orphan.statuses.drain(..));
        set.observe(observation);
        orphan.statuses = set.observations();
        orphan.seq = orphan.seq.max(seq);
        orphan.updated_at = now;
        self.deleted_orphans.remove(&orphan_id);
        self.touched_orphans.insert(orphan_id);
        None
    }

    fn touch_message(&mut self, id: &str, seq: i64) {
        if let Some(message) = self.messages.get_mut(id) {
            message.seq = message.seq.max(seq);
            message.updated_at = self.now;
            self.touched_messages.insert(id.to_string());
        }
    }
}

/// The newest message (by time, then sequence) is the conversation's last message.
fn offer_last_message(
    conversation: &mut ConversationDoc,
    message: &MessageDoc,
    at_ms: i64,
    seq: i64,
) {
    let at = DateTime::from_millis(at_ms);
    let newer = conversation
        .last_message
        .as_ref()
        .is_none_or(|current| (at, seq) >= (current.at, current.seq));
    if newer {
        conversation.last_message = Some(LastMessage {
            message_id: message.id.clone(),
            direction: message.direction,
            content_type: message.content_type.clone(),
            preview: message.preview.clone(),
            at,
            seq,
        });
    }
}

fn origin_name(origin: Origin) -> &'static str {
    match origin {
        Origin::Bot => "bot",
        Origin::Campaign => "campaign",
        Origin::Operator => "operator",
        Origin::Integrator => "integrator",
    }
}

/// Per conversation, the events of a plan in sequence order; for tests and diagnostics.
pub fn sequences(plan: &Plan) -> BTreeMap<String, Vec<i64>> {
    let mut sequences: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for event in &plan.events {
        if let Some(seq) = event.seq {
            sequences
                .entry(event.conversation_key.clone())
                .or_default()
                .push(seq);
        }
    }
    sequences
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
